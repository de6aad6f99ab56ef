//! The CLI's configuration: which control plane, and the session token.
//!
//! Kept at `$LANYARD_CONFIG` or `~/.config/lanyard/config.json` as
//! `{"control_plane": URL, "session_token": TOKEN}`, written atomically with
//! mode 0600. `lanyard logout` drops the token and keeps the control plane.
//!
//! The session token is a JWT; the CLI reads its payload without verifying it
//! (the control plane verifies) to show who is logged in and until when.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::fsutil;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

/// A logged-in session: where, and with which token.
#[derive(Debug, Clone)]
pub struct Session {
    pub control_plane: String,
    pub token: String,
}

/// The config file's path: `$LANYARD_CONFIG`, else `~/.config/lanyard/config.json`.
pub fn path() -> Result<PathBuf> {
    match std::env::var_os("LANYARD_CONFIG") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Ok(fsutil::home()?.join(".config/lanyard/config.json")),
    }
}

impl Config {
    /// The config at `path`; an empty one when the file does not exist.
    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => {
                return Err(CliError::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| {
            CliError::Failed(format!(
                "{} is not a Lanyard config ({e}): fix it, or remove it and run `lanyard login`",
                path.display()
            ))
        })
    }

    /// Write the config atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| CliError::Failed(format!("encoding the config: {e}")))?;
        text.push('\n');
        fsutil::write_atomic(path, text.as_bytes())
    }

    /// The session, or exit 3 telling how to log in.
    pub fn session(&self, path: &Path) -> Result<Session> {
        match (&self.control_plane, &self.session_token) {
            (Some(cp), Some(token)) if !token.is_empty() => Ok(Session {
                control_plane: cp.clone(),
                token: token.clone(),
            }),
            _ => Err(CliError::NotLoggedIn(path.to_path_buf())),
        }
    }
}

/// Load the config and its session (exit 3 when not logged in).
pub fn load_session() -> Result<Session> {
    let path = path()?;
    Config::load(&path)?.session(&path)
}

/// A control plane URL as the CLI stores and compares it: no trailing slash.
pub fn normalize_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        CliError::Usage(format!(
            "--control-plane {url:?} is not a URL ({e}): give e.g. http://127.0.0.1:3000"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(CliError::Usage(format!(
            "--control-plane {url:?} must be an http:// or https:// URL"
        )));
    }
    Ok(url.to_owned())
}

/// What a session token says, read without verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionInfo {
    pub email: Option<String>,
    pub org: Option<String>,
    pub admin: Option<bool>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
}

/// Decode a JWT's payload (no verification). `None` if it is not a JWT.
pub fn decode_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl SessionInfo {
    /// What the token's payload says, with the claim names Lanyard's default
    /// issuer configuration uses (`email`, `org`, `org_role`).
    pub fn from_token(token: &str) -> SessionInfo {
        let Some(claims) = decode_claims(token) else {
            return SessionInfo::default();
        };
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let admin = match claims.get("org_role") {
            Some(Value::String(r)) => Some(r == "admin"),
            Some(Value::Array(rs)) => Some(rs.iter().any(|r| r == "admin")),
            _ => None,
        };
        SessionInfo {
            email: text("email"),
            org: text("org"),
            admin,
            subject: text("sub"),
            issuer: text("iss"),
            expires_at: claims.get("exp").and_then(Value::as_u64),
        }
    }
}
