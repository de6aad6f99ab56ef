//! The CLI's configuration: which control plane, the session token, and
//! what renews the session.
//!
//! Kept at `$LANYARD_CONFIG` or `~/.config/lanyard/config.json` as
//! `{"control_plane": URL, "session_token": TOKEN, "refresh": {…}?}`,
//! written atomically with mode 0600. `refresh` ([`Refresh`]) is there after
//! `lanyard login` through the identity provider when it gave a refresh
//! token: the token and what using it takes (the issuer, its token endpoint,
//! the client id). It lives in the same file as the session on purpose: a
//! renewal replaces the ID token and the rotated refresh token in one atomic
//! write, so no reader ever sees one without the other, and one 0600 file
//! holds every secret of the CLI. `lanyard logout` drops the token and the
//! refresh token and keeps the control plane.
//!
//! The session token is a JWT; the CLI reads its payload without verifying it
//! (the control plane verifies) to show who is logged in and until when.
//!
//! A control plane is an `https://` URL; plain `http://` only to a loopback
//! host (`localhost`, `127.0.0.0/8`, `[::1]`), because the session travels in
//! every request ([`normalize_url`], applied to `--control-plane` and to the
//! saved config alike).

use std::path::{Path, PathBuf};

use lanyard_core::config::{DEFAULT_ADMIN_VALUE, DEFAULT_ORG_CLAIM, DEFAULT_ROLE_CLAIM};
use lanyard_core::http::is_loopback_host;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::fsutil;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
}

/// A refresh token and what it takes to use it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refresh {
    /// The issuer the session's ID tokens come from (their `iss`).
    pub issuer: String,
    /// Its token endpoint (from its discovery document at login).
    pub token_endpoint: String,
    /// The client the ID tokens are for (their `aud`).
    pub client_id: String,
    pub refresh_token: String,
}

/// Never shows the refresh token.
impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresh")
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Never shows the tokens.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("control_plane", &self.control_plane)
            .field("session_token", &self.session_token.as_ref().map(|_| "…"))
            .field("refresh", &self.refresh)
            .finish()
    }
}

/// A logged-in session: where, and with which token.
#[derive(Clone)]
pub struct Session {
    pub control_plane: String,
    pub token: String,
}

/// Never shows the token.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("control_plane", &self.control_plane).finish_non_exhaustive()
    }
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
                return Err(CliError::Io { context: format!("reading {}", path.display()), source: e });
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
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| CliError::Failed(format!("encoding the config: {e}")))?;
        text.push('\n');
        fsutil::write_atomic(path, text.as_bytes())
    }

    /// The session, or exit 3 telling how to log in; a saved control plane
    /// that [`normalize_url`] refuses (plain http to another host) is refused
    /// before the session is sent anywhere.
    pub fn session(&self, path: &Path) -> Result<Session> {
        match (&self.control_plane, &self.session_token) {
            (Some(cp), Some(token)) if !token.is_empty() => Ok(Session {
                control_plane: normalize_url(cp).map_err(|e| {
                    CliError::Usage(format!("{e} (saved in {}); log in again with that URL", path.display()))
                })?,
                token: token.clone(),
            }),
            _ => Err(CliError::NotLoggedIn(path.to_path_buf())),
        }
    }
}

/// Load the config and its session as saved (exit 3 when not logged in);
/// [`crate::session::current`] renews it first when it has expired.
pub fn load_session() -> Result<Session> {
    let path = path()?;
    Config::load(&path)?.session(&path)
}

/// A control plane URL as the CLI stores and compares it: no trailing slash.
/// It must be `https://host[:port][/path]`, or `http://` to a loopback host
/// (`localhost`, `127.0.0.0/8`, `[::1]`); without credentials, query or
/// fragment (paths are appended to it).
pub fn normalize_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let bad = |why: &str| CliError::Usage(format!("--control-plane {url:?} {why}"));
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| bad(&format!("is not a URL ({e}): give e.g. https://lanyard.example.com")))?;
    let Some(host) = parsed.host_str() else {
        return Err(bad("has no host: give e.g. https://lanyard.example.com"));
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must not have a query (?) or fragment (#)"));
    }
    match parsed.scheme() {
        "https" => Ok(url.to_owned()),
        "http" if is_loopback_host(host) => Ok(url.to_owned()),
        "http" => Err(bad("uses plain http, which would send your session in clear: use its https:// URL \
             (plain http is allowed only to localhost, 127.0.0.0/8 and [::1])")),
        _ => Err(bad("must be an https:// URL")),
    }
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
pub use lanyard_core::jws::unverified_payload as decode_claims;

impl SessionInfo {
    /// What the token's payload says, with the claim names Lanyard's default
    /// issuer configuration uses (`email`, `org`, `org_role`).
    pub fn from_token(token: &str) -> SessionInfo {
        let Some(claims) = decode_claims(token) else {
            return SessionInfo::default();
        };
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let admin = match claims.get(DEFAULT_ROLE_CLAIM) {
            Some(Value::String(r)) => Some(r == DEFAULT_ADMIN_VALUE),
            Some(Value::Array(rs)) => Some(rs.iter().any(|r| r == DEFAULT_ADMIN_VALUE)),
            _ => None,
        };
        SessionInfo {
            email: text("email"),
            org: text(DEFAULT_ORG_CLAIM),
            admin,
            subject: text("sub"),
            issuer: text("iss"),
            expires_at: claims.get("exp").and_then(Value::as_u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_token() {
        let cfg = Config {
            control_plane: Some("https://cp.example".into()),
            session_token: Some("secret-session".into()),
            refresh: Some(Refresh {
                issuer: "https://idp.example".into(),
                token_endpoint: "https://idp.example/token".into(),
                client_id: "lanyard-cli".into(),
                refresh_token: "secret-refresh".into(),
            }),
        };
        let shown = format!("{cfg:?} {:?}", Session { control_plane: "x".into(), token: "secret-session".into() });
        assert!(!shown.contains("secret") && shown.contains("https://idp.example/token"), "{shown}");
        // Without a refresh token, the file is what it was before sign-in existed.
        let plain = Config { refresh: None, ..cfg };
        let json: Value = serde_json::to_value(&plain).unwrap();
        assert_eq!(json, serde_json::json!({"control_plane": "https://cp.example", "session_token": "secret-session"}));
    }

    #[test]
    fn control_planes_are_https_or_loopback_http() {
        for (given, kept) in [
            ("https://lanyard.example.com/", "https://lanyard.example.com"),
            ("https://10.0.0.1:8443/base", "https://10.0.0.1:8443/base"),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("http://127.8.9.10:3000/", "http://127.8.9.10:3000"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://LOCALHOST", "http://LOCALHOST"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ] {
            assert_eq!(normalize_url(given).unwrap(), kept, "{given}");
        }
        for bad in [
            "http://lanyard.example.com",
            "http://10.0.0.1:3000",
            "http://128.0.0.1",
            "http://[::2]:3000",
            "http://localhost.evil.example",
            "http://0.0.0.0:3000",
            "ftp://127.0.0.1",
            "https://user:pw@lanyard.example.com",
            "https://lanyard.example.com/?x=1",
            "https://lanyard.example.com/#x",
            "not a url",
        ] {
            assert!(matches!(normalize_url(bad), Err(CliError::Usage(_))), "{bad}");
        }
        let err = normalize_url("http://lanyard.example.com").unwrap_err().to_string();
        assert!(err.contains("https://"), "{err}");
    }
}
