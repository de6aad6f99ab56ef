//! `lanyard login`, `logout` and `whoami`: the session the other commands use.
//! Signing in through the identity provider is [`super::sso`]; a session
//! token given (`--token`, `--token-stdin`) or minted (`--dev`) is here.

use std::io::Read as _;

use lanyard_core::dev::SessionClaims;
use lanyard_core::model::OrgRole;
use lanyard_core::wire;
use serde_json::{Value, json};

use crate::api::Api;
use crate::cli::Login;
use crate::config::{self, Config, SessionInfo};
use crate::error::{CliError, Result};
use crate::fsutil::{self, unix_now};
use lanyard_core::ids::rfc3339;

use crate::output::{Format, note, say};
use crate::{commands::dev, session, token_cache};

pub fn login(args: Login, format: Format) -> Result<()> {
    if args.token.is_none() && !args.token_stdin && !args.dev {
        return super::sso::login(&args, format);
    }
    let path = config::path()?;
    let cfg = Config::load(&path)?;
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
        let org = args.org.unwrap_or_else(|| "demo".into());
        let claims = SessionClaims { email, org, admin: args.admin, name: None, ttl_secs: args.ttl };
        dev::mint_session(&args.state, &claims)?
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Usage(
            "the session token is empty: pass it with --token or on standard input with --token-stdin".into(),
        ));
    }
    // Check the session before saving it; signing in also makes the member known.
    let me = Api::with_token(&control_plane, &token)?.me().map_err(|e| reject_hint(e, &control_plane))?;
    save_session(&path, Some(&control_plane), &token, None)?;
    logged_in(&path, &control_plane, &token, Some(&me), format, "");
    Ok(())
}

/// Save a new session (and its refresh token, or none: a refresh token of
/// an earlier session is dropped), under the session lock.
pub(crate) fn save_session(
    path: &std::path::Path,
    control_plane: Option<&str>,
    token: &str,
    refresh: Option<config::Refresh>,
) -> Result<()> {
    let _lock = session::lock(path)?;
    let mut cfg = Config::load(path)?;
    if let Some(cp) = control_plane {
        cfg.control_plane = Some(cp.to_owned());
    }
    cfg.session_token = Some(token.to_owned());
    cfg.refresh = refresh;
    cfg.save(path)
}

/// Say who is logged in where (`extra` ends the sentence).
pub(crate) fn logged_in(
    path: &std::path::Path,
    control_plane: &str,
    token: &str,
    me: Option<&wire::Me>,
    format: Format,
    extra: &str,
) {
    let info = as_seen(SessionInfo::from_token(token), me);
    match format {
        Format::Json => crate::output::print_json(&describe(control_plane, &info)),
        Format::Table => note(&format!(
            "Logged in to {control_plane} as {} (organisation {}){}; session saved in {}{extra}",
            info.email.as_deref().unwrap_or("?"),
            info.org.as_deref().unwrap_or("?"),
            if info.admin == Some(true) { ", admin" } else { "" },
            path.display()
        )),
    }
}

pub(crate) fn reject_hint(e: CliError, control_plane: &str) -> CliError {
    e.hint_on(401, |_| {
        format!("{control_plane} does not accept this session: get a fresh token from your SSO (or use --dev in the local run) and run `lanyard login` again")
    })
}

pub fn logout(format: Format) -> Result<()> {
    let path = config::path()?;
    let was = {
        let _lock = path.exists().then(|| session::lock(&path)).transpose()?;
        let mut cfg = Config::load(&path)?;
        let was = cfg.session_token.take().is_some() | cfg.refresh.take().is_some();
        if path.exists() {
            cfg.save(&path)?;
        }
        was
    };
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
        Format::Table if was => {
            note(&format!("Logged out (session and refresh token removed from {})", path.display()))
        }
        Format::Table => note("Not logged in; nothing to do"),
    }
    Ok(())
}

pub(crate) fn describe(control_plane: &str, info: &SessionInfo) -> Value {
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

/// The session as the control plane sees it, where it was asked: the
/// organisation and role come from the issuer's configured claims, which the
/// token alone does not say.
fn as_seen(mut info: SessionInfo, me: Option<&wire::Me>) -> SessionInfo {
    if let Some(me) = me {
        info.org = Some(me.organisation.clone());
        info.admin = me.member.role.map(|r| r == OrgRole::Admin);
    }
    info
}

/// `whoami`; with `local`, from the saved session only (renewed if it has
/// expired: `session::fresh`), without the control plane, which may be unknown.
pub fn whoami(local: bool, format: Format) -> Result<()> {
    let (session, me) = if local {
        let path = config::path()?;
        let cfg = session::fresh(&path, &unix_now, &session::renew_with_provider)?;
        let session = config::Session {
            control_plane: cfg.control_plane.unwrap_or_else(|| "-".into()),
            token: cfg.session_token.unwrap_or_default(),
        };
        (session, None)
    } else {
        let session = session::current()?;
        // The server is the judge: a rejected session exits 3.
        let me = Api::new(&session)?.me().map_err(|e| reject_hint(e, &session.control_plane))?;
        (session, Some(me))
    };
    let info = as_seen(SessionInfo::from_token(&session.token), me.as_ref());
    let expired = info.expires_at.is_some_and(|exp| exp <= unix_now());
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
