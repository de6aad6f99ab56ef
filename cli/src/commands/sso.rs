//! `lanyard login` through the organisation's identity provider: the
//! control plane names the issuer and client (`GET /api/v1/login`, unless
//! `--issuer`/`--client-id` bypass it), then the authorization code flow
//! with PKCE on a loopback redirect ([`crate::loopback`]), or with
//! `--device` the device authorization grant. The ID token is the session;
//! it is checked with the control plane when one is known, and saved with
//! the refresh token, if the provider gave one ([`crate::config::Refresh`]).
//!
//! What the member must see (the URL, the device code) goes to stderr; a
//! token never does.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lanyard_core::random::SystemRandom;

use crate::api::Api;
use crate::cli::Login;
use crate::commands::auth::{logged_in, reject_hint, save_session};
use crate::config::{self, Config, Refresh};
use crate::error::{CliError, Result};
use crate::loopback::Loopback;
use crate::oidc::{self, AuthRequest, Pkce, Provider, Tokens};
use crate::output::{Format, escape, note};

pub fn login(args: &Login, format: Format) -> Result<()> {
    let path = config::path()?;
    let saved = Config::load(&path)?;
    let control_plane = match args.control_plane.as_deref().or(saved.control_plane.as_deref()) {
        Some(url) => Some(config::normalize_url(url)?),
        None => None,
    };
    let (issuer, client_id, scopes) = match (&args.issuer, &args.client_id) {
        (Some(issuer), Some(client_id)) => (issuer.clone(), client_id.clone(), default_scopes()),
        _ => {
            let Some(cp) = control_plane.as_deref() else {
                return Err(CliError::Usage(
                    "which control plane? pass --control-plane URL (e.g. https://lanyard.example.com)".into(),
                ));
            };
            let found = Api::anonymous(cp)?.login_discovery(args.org.as_deref()).map_err(|e| {
                e.hint_on(404, |_| {
                    let org = args.org.as_deref().map(|o| format!(" for the organisation {:?}", escape(o)));
                    format!(
                        "{cp} has no identity provider set up for `lanyard login`{}: ask its operator, or log in \
                         with a session token (`lanyard login --token-stdin`)",
                        org.unwrap_or_default()
                    )
                })
            })?;
            let scopes = if found.scopes.is_empty() { default_scopes() } else { found.scopes };
            (found.issuer, found.client_id, scopes)
        }
    };
    let http = oidc::http_client()?;
    let provider = oidc::discover(&http, &issuer)?;
    let (id_token, tokens) = if args.device {
        device(&http, &provider, &client_id, &scopes)?
    } else {
        browser(&http, &provider, &client_id, &scopes, args)?
    };
    let me = match control_plane.as_deref() {
        // Check the session before saving it; signing in also makes the member known.
        Some(cp) => Some(Api::with_token(cp, &id_token)?.me().map_err(|e| reject_hint(e, cp))?),
        None => None,
    };
    let refresh = tokens.refresh_token.filter(|t| !t.is_empty()).map(|refresh_token| Refresh {
        issuer: provider.issuer.clone(),
        token_endpoint: provider.token_endpoint.clone(),
        client_id: client_id.clone(),
        refresh_token,
    });
    let renews = refresh.is_some();
    save_session(&path, control_plane.as_deref(), &id_token, refresh)?;
    let extra = match (renews, control_plane.is_some()) {
        (true, true) => " (renewed silently until the identity provider ends it)",
        (false, true) => " (the identity provider gave no refresh token: run `lanyard login` again when it expires)",
        (_, false) => " (no control plane yet: run `lanyard login --control-plane URL` before using it with a cluster)",
    };
    logged_in(&path, control_plane.as_deref().unwrap_or("-"), &id_token, me.as_ref(), format, extra);
    Ok(())
}

fn default_scopes() -> Vec<String> {
    oidc::DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
}

/// The authorization code flow with PKCE on a loopback redirect.
fn browser(
    http: &reqwest::blocking::Client,
    provider: &Provider,
    client_id: &str,
    scopes: &[String],
    args: &Login,
) -> Result<(String, Tokens)> {
    let random = SystemRandom;
    let loopback = Loopback::bind()?;
    let redirect_uri = loopback.redirect_uri();
    let pkce = Pkce::new(&random)?;
    let state = oidc::random_string(&random)?;
    let nonce = oidc::random_string(&random)?;
    let url = oidc::authorize_url(
        provider,
        &AuthRequest {
            client_id,
            redirect_uri: &redirect_uri,
            scopes,
            state: &state,
            nonce: &nonce,
            challenge: &pkce.challenge,
        },
    )?;
    let wait = human(args.timeout);
    note(&format!("To sign in, open this URL in a browser on this machine (waiting up to {wait}):"));
    note(&url);
    if !args.no_browser && has_display() && !open_browser(&url) {
        note("(could not open a browser: open the URL above yourself)");
    }
    let on_timeout = format!(
        "no sign-in came back within {wait}: open the URL printed above in a browser on this machine and finish \
         signing in, within the time (--timeout gives more); on a machine without a browser, run `lanyard login --device`"
    );
    let code = loopback.wait(&state, args.timeout, on_timeout)?;
    let tokens = oidc::exchange_code(http, provider, client_id, &code, &redirect_uri, &pkce.verifier)?;
    let id_token = oidc::id_token_of(&tokens, &provider.issuer, client_id, Some(&nonce))?;
    Ok((id_token, tokens))
}

/// The device authorization grant.
fn device(
    http: &reqwest::blocking::Client,
    provider: &Provider,
    client_id: &str,
    scopes: &[String],
) -> Result<(String, Tokens)> {
    let auth = oidc::start_device(http, provider, client_id, scopes)?;
    note("To sign in, open this page on any device:");
    note(&format!("  {}", auth.verification_uri));
    note(&format!("and enter the code: {}", auth.user_code));
    if let Some(complete) = &auth.verification_uri_complete {
        note(&format!("(or open {complete}, which carries the code)"));
    }
    note(&format!("Waiting for the sign-in to be approved (up to {})…", human(Duration::from_secs(auth.expires_in))));
    let started = Instant::now();
    let tokens = oidc::poll_until(
        auth.interval,
        auth.expires_in,
        || started.elapsed().as_secs_f64(),
        std::thread::sleep,
        || oidc::poll_device(http, provider, client_id, &auth.device_code),
    )?;
    let id_token = oidc::id_token_of(&tokens, &provider.issuer, client_id, None)?;
    Ok((id_token, tokens))
}

/// `5m`, `90s`, `1h`.
fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Whether a browser could open here: macOS, or a graphical session elsewhere.
fn has_display() -> bool {
    cfg!(target_os = "macos")
        || ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// Ask the desktop to open `url`; whether it could be started.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    Command::new(opener).arg(url).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
        let parse = crate::cli::parse_duration;
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse("0s").is_err() && parse("5 minutes").is_err() && parse("m").is_err());
    }
}
