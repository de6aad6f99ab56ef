//! Deployment configuration, read from Spin variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `access_gateway_enabled` | Cluster Access on (`true`) or off | `false` |
//! | `session_issuers` | JSON array of trusted SSO issuers (see [`IssuerConfig`]) | required |
//! | `agent_offline_after_seconds` | heartbeat silence after which a cluster is offline | `90` |
//! | `token_signing_keys` | secret: JSON array of Ed25519 private JWKs, the signing one first | none (no tokens) |
//! | `token_jwks` | the public keys that verify cluster tokens, as a JWKS document | none (no JWKS) |
//! | `token_lifetime_seconds` | lifetime of cluster tokens, 60 to 3600 | `900` |
//! | `public_url` | the control plane's URL as clients reach it (kubeconfig exec args) | from the request |
//!
//! Values are parsed when they are needed, so a request pays only for what it
//! uses, and a bad value is reported by name without echoing it (it may be a
//! secret).

use serde::Deserialize;

use crate::error::ApiError;

/// Where variables come from: Spin's variables interface in a component, a map
/// in tests.
pub trait Variables {
    /// `Ok(None)` when the variable is not defined for this component.
    fn get(&self, name: &str) -> Result<Option<String>, String>;
}

impl Variables for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        Ok(std::collections::BTreeMap::get(self, name).cloned())
    }
}

/// One trusted SSO issuer, as configured in `session_issuers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` claim its tokens carry.
    pub issuer: String,
    /// The `aud` claim Lanyard's sessions must carry.
    pub audience: String,
    /// Its public keys, as a JWKS document (`{"keys": [...]}`).
    pub jwks: serde_json::Value,
    /// The claim naming the caller's organisation.
    #[serde(default = "default_org_claim")]
    pub org_claim: String,
    /// The claim carrying the caller's organisation role.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Values of `role_claim` that make the caller an organisation admin.
    #[serde(default = "default_admin_values")]
    pub admin_values: Vec<String>,
}

fn default_org_claim() -> String {
    "org".into()
}
fn default_role_claim() -> String {
    "org_role".into()
}
fn default_admin_values() -> Vec<String> {
    vec!["admin".into()]
}

pub struct Config<'a> {
    vars: &'a dyn Variables,
}

impl<'a> Config<'a> {
    pub fn new(vars: &'a dyn Variables) -> Self {
        Config { vars }
    }

    fn var(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.vars
            .get(name)
            .map_err(|e| ApiError::unavailable(format!("reading variable {name}: {e}")))
    }

    pub fn gateway_enabled(&self) -> Result<bool, ApiError> {
        match self.var("access_gateway_enabled")?.as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(_) => Err(ApiError::unavailable("variable access_gateway_enabled must be true or false")),
        }
    }

    pub fn issuers(&self) -> Result<Vec<IssuerConfig>, ApiError> {
        let raw = self
            .var("session_issuers")?
            .ok_or_else(|| ApiError::unavailable("variable session_issuers is not set"))?;
        serde_json::from_str(&raw).map_err(|e| {
            ApiError::unavailable(format!(
                "variable session_issuers is not a JSON array of issuers (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    pub fn signing_keys(&self) -> Result<crate::token::SigningKeys, ApiError> {
        let raw = self
            .var("token_signing_keys")?
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ApiError::unavailable("variable token_signing_keys is not set: this deployment cannot mint cluster tokens"))?;
        crate::token::SigningKeys::parse(&raw).map_err(|e| ApiError::unavailable(format!("variable token_signing_keys {e}")))
    }

    /// The public keys that verify cluster tokens, as `jwks` serves them. The
    /// `jwks` component gets this and never the private keys.
    pub fn token_jwks(&self) -> Result<serde_json::Value, ApiError> {
        let raw = self
            .var("token_jwks")?
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ApiError::unavailable("variable token_jwks is not set: this deployment publishes no token keys"))?;
        crate::token::parse_public_jwks(&raw).map_err(|e| ApiError::unavailable(format!("variable token_jwks {e}")))
    }

    pub fn token_lifetime(&self) -> Result<u64, ApiError> {
        use crate::token::{DEFAULT_LIFETIME_SECS, MAX_LIFETIME_SECS, MIN_LIFETIME_SECS};
        match self.var("token_lifetime_seconds")?.filter(|v| !v.trim().is_empty()) {
            None => Ok(DEFAULT_LIFETIME_SECS),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (MIN_LIFETIME_SECS..=MAX_LIFETIME_SECS).contains(n))
                .ok_or_else(|| ApiError::unavailable("variable token_lifetime_seconds must be between 60 and 3600 (at most one hour)")),
        }
    }

    pub fn public_url(&self) -> Result<Option<String>, ApiError> {
        Ok(self.var("public_url")?.map(|v| v.trim().trim_end_matches('/').to_owned()).filter(|v| !v.is_empty()))
    }

    pub fn agent_offline_after(&self) -> Result<u64, ApiError> {
        match self.var("agent_offline_after_seconds")? {
            None => Ok(90),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| ApiError::unavailable("variable agent_offline_after_seconds must be a positive integer")),
        }
    }
}
