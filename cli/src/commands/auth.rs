//! `lanyard login`, `logout` and `whoami`: the session the other commands use.

use std::io::Read as _;

use lanyard_core::dev::SessionClaims;
use serde_json::{Value, json};

use crate::api::Api;
use crate::cli::Login;
use crate::config::{self, Config, SessionInfo};
use crate::error::{CliError, Result};
use crate::fsutil::{self, unix_now};
use lanyard_core::ids::rfc3339;

use crate::output::{Format, note, say};
use crate::{commands::dev, token_cache};

pub fn login(args: Login, format: Format) -> Result<()> {
    let path = config::path()?;
    let mut cfg = Config::load(&path)?;
    let control_plane = match args.control_plane.as_deref().or(cfg.control_plane.as_deref()) {
        Some(url) => config::normalize_url(url)?,
        None => {
            return Err(CliError::Usage(
                "which control plane? pass --control-plane URL (e.g. http://127.0.0.1:3000)".into(),
            ));
        }
    };
    let token = if let Some(t) = args.token {
        t
    } else if args.token_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(CliError::io("reading the session token from standard input"))?;
        text
    } else {
        let email = args.email.unwrap_or_default();
        let claims = SessionClaims { email, org: args.org, admin: args.admin, name: None, ttl_secs: args.ttl };
        dev::mint_session(&args.state, &claims)?
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Usage(
            "the session token is empty: pass it with --token or on standard input with --token-stdin".into(),
        ));
    }
    // Check the session before saving it; signing in also makes the member known.
    Api::with_token(&control_plane, &token)?.clusters_json().map_err(|e| reject_hint(e, &control_plane))?;
    cfg.control_plane = Some(control_plane.clone());
    cfg.session_token = Some(token.clone());
    cfg.save(&path)?;
    let info = SessionInfo::from_token(&token);
    match format {
        Format::Json => crate::output::print_json(&describe(&control_plane, &info)),
        Format::Table => note(&format!(
            "Logged in to {control_plane} as {} (organisation {}){}; session saved in {}",
            info.email.as_deref().unwrap_or("?"),
            info.org.as_deref().unwrap_or("?"),
            if info.admin == Some(true) { ", admin" } else { "" },
            path.display()
        )),
    }
    Ok(())
}

fn reject_hint(e: CliError, control_plane: &str) -> CliError {
    e.hint_on(401, |_| {
        format!("{control_plane} does not accept this session: get a fresh token from your SSO (or use --dev in the local run) and run `lanyard login` again")
    })
}

pub fn logout(format: Format) -> Result<()> {
    let path = config::path()?;
    let mut cfg = Config::load(&path)?;
    let was = cfg.session_token.take().is_some();
    if path.exists() {
        cfg.save(&path)?;
    }
    // Cached cluster tokens were minted with this session: drop them too.
    let mut dropped = 0;
    if let Ok(dir) = token_cache::dir()
        && let Ok(entries) = std::fs::read_dir(&dir)
    {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "json") && fsutil::remove_if_exists(&entry.path())? {
                dropped += 1;
            }
        }
    }
    match format {
        Format::Json => crate::output::print_json(&json!({"logged_out": was, "cached_tokens_removed": dropped})),
        Format::Table if was => note(&format!("Logged out (session removed from {})", path.display())),
        Format::Table => note("Not logged in; nothing to do"),
    }
    Ok(())
}

fn describe(control_plane: &str, info: &SessionInfo) -> Value {
    json!({
        "control_plane": control_plane,
        "email": info.email,
        "org": info.org,
        "admin": info.admin,
        "subject": info.subject,
        "issuer": info.issuer,
        "expires_at": info.expires_at.map(rfc3339),
    })
}

pub fn whoami(format: Format) -> Result<()> {
    let session = config::load_session()?;
    let info = SessionInfo::from_token(&session.token);
    let expired = info.expires_at.is_some_and(|exp| exp <= unix_now());
    // The server is the judge: a rejected session exits 3.
    Api::new(&session)?.clusters_json().map_err(|e| reject_hint(e, &session.control_plane))?;
    match format {
        Format::Json => crate::output::print_json(&describe(&session.control_plane, &info)),
        Format::Table => {
            let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            say(&format!("Control plane: {}", session.control_plane));
            say(&format!("Email:         {}", text(&info.email)));
            say(&format!("Organisation:  {}", text(&info.org)));
            say(&format!(
                "Admin:         {}",
                info.admin.map_or("-".into(), |a| if a { "yes" } else { "no" }.to_owned())
            ));
            say(&format!(
                "Expires:       {}{}",
                info.expires_at.map_or("-".into(), rfc3339),
                if expired { " (expired)" } else { "" }
            ));
        }
    }
    Ok(())
}
