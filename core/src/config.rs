//! Deployment configuration, read from Spin variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `access_gateway_enabled` | Cluster Access on (`true`) or off | `false` |
//! | `session_issuers` | JSON array of trusted SSO issuers (see [`IssuerConfig`], [`parse_issuers`]) | required |
//! | `development_mode` | a development deployment: the development issuer may be trusted | `false` |
//! | `agent_offline_after_seconds` | heartbeat silence after which a cluster is offline | `90` |
//! | `token_signing_keys` | secret: JSON array of Ed25519 private JWKs, the signing one first | none (no tokens) |
//! | `token_jwks` | the public keys that verify cluster tokens, as a JWKS document | none (no JWKS) |
//! | `token_lifetime_seconds` | lifetime of cluster tokens, 60 to 3600 | `900` |
//! | `public_url` | the control plane's URL as clients reach it (kubeconfig exec args, sign-in redirects) | from the request |
//! | `oidc_client_secrets` | secret: JSON object, issuer URL → the browser sign-in client's secret there | none (public clients, PKCE only) |
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

/// One trusted SSO issuer, as configured in `session_issuers`, validated on
/// its own (see [`parse_issuers`] for the checks across entries).
///
/// An issuer is bound to the organisations it may speak for: exactly one of
/// `org` (every session of this issuer is in that organisation) and `orgs`
/// (the organisation comes from `org_claim` and must be in the list).
///
/// Its keys are either given (`jwks`, for an air-gapped deployment or the
/// development issuer) or read from the provider: its discovery document at
/// `<issuer>/.well-known/openid-configuration` and the `jwks_uri` it names,
/// cached in the store ([`crate::oidc`]). Only a discovered issuer can sign
/// people in (`lanyard login`, `/auth/login`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "IssuerEntry")]
pub struct IssuerConfig {
    /// The `iss` claim its tokens carry: the provider's issuer URL.
    pub issuer: String,
    /// Lanyard's client id at this issuer: the browser sign-in's client, and
    /// an `aud` a session may carry (and so the `azp` of a multi-audience session).
    pub client_id: String,
    /// The client the CLI signs in with (a public client: PKCE, no secret),
    /// when it is not [`IssuerConfig::client_id`]; also an accepted `aud`.
    pub cli_client_id: Option<String>,
    /// Where its keys come from.
    pub keys: IssuerKeys,
    /// The scopes a sign-in asks for (`openid` always among them).
    pub scopes: Vec<String>,
    /// The organisations this issuer may speak for.
    pub orgs: OrgBinding,
    /// The claim naming the caller's organisation: a string, or an array (a
    /// `groups` claim) of which exactly one value is a bound organisation.
    pub org_claim: String,
    /// The claim carrying the caller's organisation role.
    pub role_claim: String,
    /// Values of `role_claim` that make the caller an organisation admin.
    pub admin_values: Vec<String>,
    /// Whether another issuer may speak for the same organisations (both
    /// entries must say so).
    pub allow_shared_orgs: bool,
    /// Whether a session without an `email_verified` claim is accepted, for
    /// providers that never send it (`email_verified: false` is always refused).
    pub allow_missing_email_verified: bool,
    /// How long a fetched discovery document and key set are used before
    /// they are read again.
    pub cache_seconds: u64,
    /// The least time between two reads of the key set caused by tokens
    /// naming a key it does not have.
    pub refetch_interval_seconds: u64,
}

impl IssuerConfig {
    /// The audiences a session may carry: Lanyard's client ids at this issuer.
    pub fn audiences(&self) -> Vec<&str> {
        let mut audiences = vec![self.client_id.as_str()];
        audiences.extend(self.cli_client_id.as_deref().filter(|c| *c != self.client_id));
        audiences
    }

    /// The client the CLI signs in with.
    pub fn cli_client(&self) -> &str {
        self.cli_client_id.as_deref().unwrap_or(&self.client_id)
    }
}

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum IssuerKeys {
    /// Given in the configuration, as a JWKS document (`{"keys": [...]}`).
    Static(serde_json::Value),
    /// Read from the provider's discovery document and `jwks_uri`.
    Discovered,
}

/// The organisations an issuer may speak for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgBinding {
    /// Every session of the issuer is in this organisation.
    Fixed(String),
    /// The session names its organisation in `org_claim`; it must be one of these.
    AllowList(Vec<String>),
}

impl OrgBinding {
    /// Every organisation of the binding.
    pub fn orgs(&self) -> &[String] {
        match self {
            OrgBinding::Fixed(org) => std::slice::from_ref(org),
            OrgBinding::AllowList(orgs) => orgs,
        }
    }

    /// Whether the issuer may speak for `org`.
    pub fn allows(&self, org: &str) -> bool {
        self.orgs().iter().any(|o| o == org)
    }
}

/// A `session_issuers` entry as written, before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerEntry {
    issuer: String,
    #[serde(alias = "audience")]
    client_id: String,
    #[serde(default)]
    cli_client_id: Option<String>,
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    org: Option<String>,
    #[serde(default)]
    orgs: Option<Vec<String>>,
    #[serde(default = "default_org_claim")]
    org_claim: String,
    #[serde(default = "default_role_claim")]
    role_claim: String,
    #[serde(default = "default_admin_values")]
    admin_values: Vec<String>,
    #[serde(default)]
    allow_shared_orgs: bool,
    #[serde(default)]
    allow_missing_email_verified: bool,
    #[serde(default)]
    cache_seconds: Option<u64>,
    #[serde(default)]
    refetch_interval_seconds: Option<u64>,
}

/// The scopes a sign-in asks for, unless an issuer says otherwise.
pub const DEFAULT_SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];
/// How long a provider's discovery document and keys are kept, unless an issuer says otherwise.
pub const DEFAULT_CACHE_SECONDS: u64 = 3600;
/// The least time between two unknown-key refetches, unless an issuer says otherwise.
pub const DEFAULT_REFETCH_INTERVAL_SECONDS: u64 = 60;

/// The claim that names the session's organisation, unless an issuer says otherwise.
pub const DEFAULT_ORG_CLAIM: &str = "org";
/// The claim that names the session's organisation role, unless an issuer says otherwise.
pub const DEFAULT_ROLE_CLAIM: &str = "org_role";
/// The role-claim value that makes an organisation admin, unless an issuer says otherwise.
pub const DEFAULT_ADMIN_VALUE: &str = "admin";

fn default_org_claim() -> String {
    DEFAULT_ORG_CLAIM.into()
}
fn default_role_claim() -> String {
    DEFAULT_ROLE_CLAIM.into()
}
fn default_admin_values() -> Vec<String> {
    vec![DEFAULT_ADMIN_VALUE.into()]
}

/// The longest organisation name a session may carry.
pub const MAX_ORG_LEN: usize = 128;

/// Why `session_issuers` cannot be used. Messages name entries by their
/// `issuer` (public) and never echo keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerConfigError {
    /// Not JSON, or not an array.
    #[error("is not a JSON array of issuers (line {line}, column {column})")]
    NotJson {
        /// Where the parser stopped: line.
        line: usize,
        /// And column.
        column: usize,
    },
    /// An empty array: nobody could sign in.
    #[error("has no issuers")]
    Empty,
    /// One entry is wrong.
    #[error("entry {index} ({issuer}): {problem}")]
    Entry {
        /// Its position, from 0.
        index: usize,
        /// Its `issuer` (public).
        issuer: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two entries for one issuer.
    #[error("names issuer {0} twice; give each issuer one entry")]
    DuplicateIssuer(String),
    /// Two issuers may speak for one organisation without both allowing it.
    #[error(
        "lets both {first} and {second} speak for organisation {org:?}; bind each organisation to one issuer, \
         or set \"allow_shared_orgs\": true on both entries if they really are the same organisation's providers"
    )]
    SharedOrg {
        /// The organisation.
        org: String,
        /// One issuer.
        first: String,
        /// The other.
        second: String,
    },
    /// The development issuer outside development mode.
    #[error(
        "trusts the development issuer ({}), whose key anyone with the local run's state holds; remove it, \
         or set development_mode to true if this is a development deployment",
        crate::dev::DEV_ISSUER
    )]
    DevelopmentIssuer,
}

fn valid_org(org: &str) -> bool {
    !org.is_empty() && org.len() <= MAX_ORG_LEN && org.trim() == org && !org.chars().any(char::is_control)
}

impl TryFrom<IssuerEntry> for IssuerConfig {
    type Error = String;

    fn try_from(e: IssuerEntry) -> Result<Self, String> {
        if e.issuer.trim().is_empty() {
            return Err("`issuer` must not be empty".into());
        }
        if e.client_id.trim().is_empty() {
            return Err("`client_id` (or `audience`) must not be empty".into());
        }
        if e.cli_client_id.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err("`cli_client_id` must not be empty when given".into());
        }
        let keys = match e.jwks {
            Some(jwks) => IssuerKeys::Static(jwks),
            None => {
                crate::oidc::check_provider_url(&e.issuer).map_err(|problem| {
                    format!("{problem}; without `jwks`, the issuer's keys are read from its discovery document")
                })?;
                IssuerKeys::Discovered
            }
        };
        let scopes = match e.scopes {
            None => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            Some(scopes) if scopes.iter().any(|s| s == "openid") => scopes,
            Some(_) => return Err("`scopes` must include \"openid\"".into()),
        };
        if scopes.iter().any(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control())) {
            return Err("each scope must be one word".into());
        }
        let cache_seconds = e.cache_seconds.unwrap_or(DEFAULT_CACHE_SECONDS);
        let refetch_interval_seconds = e.refetch_interval_seconds.unwrap_or(DEFAULT_REFETCH_INTERVAL_SECONDS);
        if !(1..=86_400).contains(&cache_seconds) || !(1..=86_400).contains(&refetch_interval_seconds) {
            return Err("`cache_seconds` and `refetch_interval_seconds` must be 1 to 86400".into());
        }
        let orgs = match (e.org, e.orgs) {
            (Some(_), Some(_)) => {
                return Err("give either `org` (a fixed organisation) or `orgs` (an allow-list), not both".into());
            }
            (None, None) => {
                return Err("bind the issuer to the organisations it may speak for: `org` (a fixed organisation) \
                     or `orgs` (an allow-list of organisations its `org_claim` may name)"
                    .into());
            }
            (Some(org), None) if valid_org(&org) => OrgBinding::Fixed(org),
            (None, Some(orgs)) if !orgs.is_empty() && orgs.iter().all(|o| valid_org(o)) => OrgBinding::AllowList(orgs),
            (None, Some(orgs)) if orgs.is_empty() => return Err("`orgs` must name at least one organisation".into()),
            _ => {
                return Err(format!(
                    "organisation names must be 1 to {MAX_ORG_LEN} characters without surrounding spaces"
                ));
            }
        };
        Ok(IssuerConfig {
            issuer: e.issuer,
            client_id: e.client_id,
            cli_client_id: e.cli_client_id,
            keys,
            scopes,
            orgs,
            org_claim: e.org_claim,
            role_claim: e.role_claim,
            admin_values: e.admin_values,
            allow_shared_orgs: e.allow_shared_orgs,
            allow_missing_email_verified: e.allow_missing_email_verified,
            cache_seconds,
            refetch_interval_seconds,
        })
    }
}

/// Parse and check `session_issuers`: every entry valid and bound to its
/// organisations, no issuer twice, no organisation spoken for by two issuers
/// unless both allow it, and the development issuer only in a development
/// deployment.
pub fn parse_issuers(raw: &str, development_mode: bool) -> Result<Vec<IssuerConfig>, IssuerConfigError> {
    let entries: Vec<IssuerEntry> =
        serde_json::from_str(raw).map_err(|e| IssuerConfigError::NotJson { line: e.line(), column: e.column() })?;
    if entries.is_empty() {
        return Err(IssuerConfigError::Empty);
    }
    let mut issuers: Vec<IssuerConfig> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let issuer = entry.issuer.clone();
        let config =
            IssuerConfig::try_from(entry).map_err(|problem| IssuerConfigError::Entry { index, issuer, problem })?;
        if config.issuer == crate::dev::DEV_ISSUER && !development_mode {
            return Err(IssuerConfigError::DevelopmentIssuer);
        }
        for earlier in &issuers {
            if earlier.issuer == config.issuer {
                return Err(IssuerConfigError::DuplicateIssuer(config.issuer));
            }
            let shared = earlier.allow_shared_orgs && config.allow_shared_orgs;
            if let Some(org) = config.orgs.orgs().iter().find(|o| earlier.orgs.allows(o))
                && !shared
            {
                return Err(IssuerConfigError::SharedOrg {
                    org: org.clone(),
                    first: earlier.issuer.clone(),
                    second: config.issuer.clone(),
                });
            }
        }
        issuers.push(config);
    }
    Ok(issuers)
}

/// The deployment's configuration: its variables, each read and checked when
/// an endpoint needs it (a bad value is `unavailable`, named in the log).
pub struct Config<'a> {
    vars: &'a dyn Variables,
}

impl<'a> Config<'a> {
    /// The configuration in `vars`.
    pub fn new(vars: &'a dyn Variables) -> Self {
        Config { vars }
    }

    fn var(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.vars.get(name).map_err(|e| ApiError::unavailable(format!("reading variable {name}: {e}")))
    }

    /// A boolean variable, off when unset or empty.
    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.var(name)?.as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(_) => Err(ApiError::unavailable(format!("variable {name} must be true or false"))),
        }
    }

    /// Whether Cluster Access is switched on (`access_gateway_enabled`).
    pub fn gateway_enabled(&self) -> Result<bool, ApiError> {
        self.flag("access_gateway_enabled")
    }

    /// Whether this is a development deployment (the local run, the tests):
    /// only then may `session_issuers` trust the development issuer.
    pub fn development_mode(&self) -> Result<bool, ApiError> {
        self.flag("development_mode")
    }

    /// The trusted issuers, checked as a whole ([`parse_issuers`]); a bad
    /// configuration is `unavailable`, with the reason for the log.
    pub fn issuers(&self) -> Result<Vec<IssuerConfig>, ApiError> {
        let raw =
            self.var("session_issuers")?.ok_or_else(|| ApiError::unavailable("variable session_issuers is not set"))?;
        parse_issuers(&raw, self.development_mode()?)
            .map_err(|e| ApiError::unavailable(format!("variable session_issuers {e}")))
    }

    /// The keys that sign cluster tokens (`token_signing_keys`, secret).
    pub fn signing_keys(&self) -> Result<crate::token::SigningKeys, ApiError> {
        let raw = self.var("token_signing_keys")?.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            ApiError::unavailable("variable token_signing_keys is not set: this deployment cannot mint cluster tokens")
        })?;
        crate::token::SigningKeys::parse(&raw)
            .map_err(|e| ApiError::unavailable(format!("variable token_signing_keys {e}")))
    }

    /// The public keys that verify cluster tokens, as `jwks` serves them. The
    /// `jwks` component gets this and never the private keys.
    pub fn token_jwks(&self) -> Result<serde_json::Value, ApiError> {
        let raw = self.var("token_jwks")?.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            ApiError::unavailable("variable token_jwks is not set: this deployment publishes no token keys")
        })?;
        crate::token::parse_public_jwks(&raw).map_err(|e| ApiError::unavailable(format!("variable token_jwks {e}")))
    }

    /// How long a cluster token lives (`token_lifetime_seconds`, bounded).
    pub fn token_lifetime(&self) -> Result<u64, ApiError> {
        use crate::token::{DEFAULT_LIFETIME_SECS, MAX_LIFETIME_SECS, MIN_LIFETIME_SECS};
        match self.var("token_lifetime_seconds")?.filter(|v| !v.trim().is_empty()) {
            None => Ok(DEFAULT_LIFETIME_SECS),
            Some(v) => {
                v.trim().parse::<u64>().ok().filter(|n| (MIN_LIFETIME_SECS..=MAX_LIFETIME_SECS).contains(n)).ok_or_else(
                    || {
                        ApiError::unavailable(
                            "variable token_lifetime_seconds must be between 60 and 3600 (at most one hour)",
                        )
                    },
                )
            }
        }
    }

    /// The control plane's URL as clients reach it (`public_url`), if set.
    pub fn public_url(&self) -> Result<Option<String>, ApiError> {
        Ok(self.var("public_url")?.map(|v| v.trim().trim_end_matches('/').to_owned()).filter(|v| !v.is_empty()))
    }

    /// The browser sign-in client's secret at `issuer` (`oidc_client_secrets`,
    /// secret, given only to the callback): `None` for a public client.
    pub fn client_secret(&self, issuer: &str) -> Result<Option<String>, ApiError> {
        let Some(raw) = self.var("oidc_client_secrets")?.filter(|v| !v.trim().is_empty()) else { return Ok(None) };
        let secrets: std::collections::BTreeMap<String, String> = serde_json::from_str(&raw).map_err(|_| {
            ApiError::unavailable("variable oidc_client_secrets must be a JSON object of issuer URL to client secret")
        })?;
        Ok(secrets.get(issuer).cloned().filter(|s| !s.is_empty()))
    }

    /// After how many seconds without a heartbeat an agent is offline.
    pub fn agent_offline_after(&self) -> Result<u64, ApiError> {
        match self.var("agent_offline_after_seconds")? {
            None => Ok(90),
            Some(v) => v.trim().parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                ApiError::unavailable("variable agent_offline_after_seconds must be a positive integer")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const JWKS_SECRET_LOOKING: &str = "x-value-that-must-not-be-echoed";

    fn entry(issuer: &str, binding: Value) -> Value {
        let mut e = json!({"issuer": issuer, "audience": "lanyard", "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": JWKS_SECRET_LOOKING}]}});
        for (k, v) in binding.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    }

    fn parse(entries: &[Value], development: bool) -> Result<Vec<IssuerConfig>, IssuerConfigError> {
        parse_issuers(&Value::Array(entries.to_vec()).to_string(), development)
    }

    #[test]
    fn every_issuer_is_bound_to_its_organisations() {
        let issuers = parse(
            &[entry("https://a", json!({"org": "acme"})), entry("https://b", json!({"orgs": ["globex", "initech"]}))],
            false,
        )
        .unwrap();
        assert_eq!(issuers[0].orgs, OrgBinding::Fixed("acme".into()));
        assert_eq!(issuers[1].orgs, OrgBinding::AllowList(vec!["globex".into(), "initech".into()]));
        assert!(!issuers[0].allow_missing_email_verified && !issuers[0].allow_shared_orgs, "strict by default");
        let bad = [
            (json!({}), "bind the issuer"),
            (json!({"org": "acme", "orgs": ["acme"]}), "not both"),
            (json!({"orgs": []}), "at least one"),
            (json!({"org": ""}), "organisation names"),
            (json!({"orgs": [" acme"]}), "organisation names"),
        ];
        for (binding, want) in bad {
            let err = parse(&[entry("https://a", binding.clone())], false).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, IssuerConfigError::Entry { index: 0, .. }), "{binding}: {message}");
            assert!(message.contains(want) && message.contains("https://a"), "{binding}: {message}");
        }
    }

    #[test]
    fn two_issuers_for_one_organisation_need_both_to_allow_it() {
        let a = entry("https://a", json!({"orgs": ["acme", "globex"]}));
        let b = entry("https://b", json!({"org": "globex"}));
        let err = parse(&[a.clone(), b.clone()], false).unwrap_err();
        assert_eq!(
            err,
            IssuerConfigError::SharedOrg {
                org: "globex".into(),
                first: "https://a".into(),
                second: "https://b".into()
            }
        );
        assert!(err.to_string().contains("allow_shared_orgs"), "{err}");
        let shared = |mut e: Value| {
            e["allow_shared_orgs"] = true.into();
            e
        };
        assert!(parse(&[shared(a.clone()), b.clone()], false).is_err(), "one side alone does not allow it");
        assert!(parse(&[a.clone(), shared(b.clone())], false).is_err(), "one side alone does not allow it");
        assert_eq!(parse(&[shared(a.clone()), shared(b)], false).unwrap().len(), 2);
        let err = parse(&[a.clone(), entry("https://a", json!({"org": "initech"}))], false).unwrap_err();
        assert_eq!(err, IssuerConfigError::DuplicateIssuer("https://a".into()));
        assert_eq!(parse(&[], false).unwrap_err(), IssuerConfigError::Empty);
    }

    #[test]
    fn the_development_issuer_needs_a_development_deployment() {
        let dev = entry(crate::dev::DEV_ISSUER, json!({"orgs": ["demo"]}));
        assert_eq!(parse(std::slice::from_ref(&dev), false).unwrap_err(), IssuerConfigError::DevelopmentIssuer);
        assert_eq!(parse(&[dev], true).unwrap().len(), 1);
    }

    #[test]
    fn config_errors_are_unavailable_and_never_echo_the_value() {
        let mut vars = std::collections::BTreeMap::new();
        let dev = entry(crate::dev::DEV_ISSUER, json!({"orgs": ["demo"]}));
        vars.insert("session_issuers".to_owned(), Value::Array(vec![dev]).to_string());
        let err = Config::new(&vars).issuers().unwrap_err();
        assert_eq!(err.code().as_str(), "unavailable");
        let ApiError::Unavailable { detail } = &err else { unreachable!() };
        assert!(detail.contains("development_mode") && !detail.contains(JWKS_SECRET_LOOKING), "{detail}");
        vars.insert("development_mode".to_owned(), "true".to_owned());
        assert!(Config::new(&vars).issuers().is_ok());
        vars.insert("development_mode".to_owned(), "yes please".to_owned());
        assert_eq!(Config::new(&vars).issuers().unwrap_err().code().as_str(), "unavailable");
        // A JSON error names the position only.
        vars.insert("development_mode".to_owned(), "true".to_owned());
        vars.insert("session_issuers".to_owned(), format!(r#"[{{"issuer": "{JWKS_SECRET_LOOKING}", "audience": 1}}]"#));
        let ApiError::Unavailable { detail } = Config::new(&vars).issuers().unwrap_err() else { unreachable!() };
        assert!(detail.contains("line 1") && !detail.contains(JWKS_SECRET_LOOKING), "{detail}");
    }
}
