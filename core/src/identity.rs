//! Who is calling: the SSO session, verified.
//!
//! A session is an ID token from a trusted OIDC issuer (EdDSA, ES256 or
//! RS256), sent as the `lanyard_session` cookie by a browser or as
//! `Authorization: Bearer` by the CLI. The token's (unverified) `iss` picks the
//! configured issuer, whose keys come from the configuration or the provider
//! ([`crate::oidc::KeySource`]); then issuer, audience (one of Lanyard's client
//! ids there, and `azp` when there are several audiences), `exp`, `nbf`, `iat`
//! (not in the future) and signature are checked, using only keys meant for
//! verifying this algorithm (`use`, `alg`, `key_ops`). A browser sign-in also
//! checks the `nonce` it sent ([`verify_id_token`]). The email must be verified by the provider and
//! ASCII. The organisation must be one the issuer is bound to
//! ([`crate::config::OrgBinding`]); the organisation role comes from claims.
//! A cookie-authenticated write must also carry `X-CSRF-Token` equal to the
//! session's CSRF value ([`csrf_token`]).
//!
//! Nothing here stores or logs the token.

use base64::Engine as _;
use jwt_simple::JWTError;
use jwt_simple::prelude::*;
use serde_json::Value;

use crate::config::{IssuerConfig, MAX_ORG_LEN, OrgBinding};
use crate::error::ApiError;
use crate::http::{Bearer, Request};
use crate::ids;
use crate::jws;
use crate::model::{Email, OrgRole};
use crate::oidc::KeySource;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lanyard_session";
/// The CSRF header's name.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW_SECONDS: u64 = 60;
/// Longest session token considered at all.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A verified SSO identity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The issuer that signed the session.
    pub issuer: String,
    /// The subject at that issuer.
    pub subject: String,
    /// The verified email.
    pub email: Email,
    /// The display name, if the session has one.
    pub name: Option<String>,
    /// The organisation, one the issuer is bound to.
    pub org: String,
    /// The organisation role, from the issuer's role claim.
    pub role: OrgRole,
    /// Unix seconds when the session ends (its `exp`).
    pub expires_at: u64,
}

/// How the session reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer` (the CLI).
    Bearer,
    /// The session cookie (a browser): writes need the CSRF header.
    Cookie,
}

/// A verified session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub identity: Identity,
    /// How it was presented.
    pub via: Via,
    /// The CSRF value bound to this session.
    pub csrf: String,
    /// Set when the token was verified now rather than recalled: the key to
    /// remember it under once the request is admitted (a refused request
    /// writes nothing), with [`VerifiedSessions::remember`].
    pub unremembered: Option<String>,
}

/// The CSRF value of a session token: a digest of the token, so it is bound to
/// the session and cannot be guessed without it. The Access view learns it from
/// the capabilities call (which only a same-origin page can read) and echoes it
/// in `X-CSRF-Token`.
pub fn csrf_token(session_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest([b"lanyard-csrf-v1\0".as_slice(), session_token.as_bytes()].concat());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..24])
}

/// Authenticate a request: bearer first, then the session cookie.
pub fn authenticate(
    req: &Request,
    issuers: &[IssuerConfig],
    keys: &dyn KeySource,
    verified: &dyn VerifiedSessions,
    now: u64,
) -> Result<Session, ApiError> {
    let (token, via) = match (req.bearer(), req.cookie(SESSION_COOKIE).filter(|t| !t.is_empty())) {
        (Bearer::Token(token), _) => (token, Via::Bearer),
        (Bearer::Malformed, _) => {
            return Err(ApiError::Unauthenticated("the Authorization header must be `Bearer <session token>`".into()));
        }
        (Bearer::Absent, Some(token)) => (token, Via::Cookie),
        (Bearer::Absent, None) => {
            return Err(ApiError::Unauthenticated(
                "sign in first: send your session as `Authorization: Bearer <token>` or the lanyard_session cookie"
                    .into(),
            ));
        }
    };
    let (identity, unremembered) = recall_or_verify(token, issuers, keys, verified, now)?;
    Ok(Session { identity, via, csrf: csrf_token(token), unremembered })
}

/// Refuse a cookie-authenticated write without the matching CSRF header.
pub fn check_csrf(req: &Request, session: &Session) -> Result<(), ApiError> {
    if session.via != Via::Cookie || !req.method.is_write() {
        return Ok(());
    }
    match req.header(CSRF_HEADER) {
        Some(sent) if ids::ct_eq(sent.trim(), &session.csrf) => Ok(()),
        _ => Err(ApiError::CsrfRequired),
    }
}

/// Verify a session token against the trusted issuers, or recall that it was
/// verified moments ago (see [`VerifiedSessions`]).
pub fn verify_session(
    token: &str,
    issuers: &[IssuerConfig],
    keys: &dyn KeySource,
    verified: &dyn VerifiedSessions,
    now: u64,
) -> Result<Identity, ApiError> {
    let (identity, unremembered) = recall_or_verify(token, issuers, keys, verified, now)?;
    if let Some(key) = &unremembered {
        verified.remember(key, &identity, now);
    }
    Ok(identity)
}

/// The identity recalled, or verified now together with the key to remember
/// it under (`None` when recalled, or when the key set has no version).
fn recall_or_verify(
    token: &str,
    issuers: &[IssuerConfig],
    keys: &dyn KeySource,
    verified: &dyn VerifiedSessions,
    now: u64,
) -> Result<(Identity, Option<String>), ApiError> {
    let issuer = issuer_of(token, issuers)?;
    let key = keys.version(issuer).map(|version| verified_key(token, issuer, &version));
    if let Some(identity) = key.as_ref().and_then(|k| verified.recall(k, now)).filter(|id| now <= id.expires_at) {
        return Ok((identity, None));
    }
    let identity = verify_id_token(token, issuer, keys, &issuer.audiences(), None, now)?;
    Ok((identity, key))
}

/// Sessions verified moments ago, so that a token is not verified again on
/// every request: the signature check is most of a request's work in the
/// Wasm guest (an Ed25519 or RSA verification), and with discovered keys it
/// also reads the key set. [`crate::store`] keeps them for a few minutes.
///
/// What makes this safe: an entry is found only under a digest of the whole
/// token *and* of the issuer entry as configured, so it stands for exactly
/// that token verified under exactly that configuration (a changed key set,
/// audience or organisation binding misses); it is written only after the
/// full verification succeeded; it never outlives the token's `exp` (checked
/// again here on every recall) nor its few minutes; and what the member may
/// do is still decided on every request (deactivation, grants). The token
/// itself is never stored. The key also covers the version of the issuer's
/// key set ([`KeySource::version`]), so once a key rotation at the provider
/// is followed, tokens of the old keys are verified again (and refused).
pub trait VerifiedSessions {
    /// The identity verified under `key`, if it is still fresh at `now`.
    fn recall(&self, key: &str, now: u64) -> Option<Identity>;
    /// Remember a successful verification (best effort: a failure only
    /// means the next request verifies again).
    fn remember(&self, key: &str, identity: &Identity, now: u64);
}

/// Remembers nothing: every token is verified (the CLI, tests).
pub struct NoCache;

impl VerifiedSessions for NoCache {
    fn recall(&self, _key: &str, _now: u64) -> Option<Identity> {
        None
    }

    fn remember(&self, _key: &str, _identity: &Identity, _now: u64) {}
}

/// The key a verification is remembered under: a digest of the issuer entry
/// (as the core understands it), of its key set's version and of the token.
fn verified_key(token: &str, issuer: &IssuerConfig, key_set: &str) -> String {
    ids::digest_hex(&["verified-session-v1", &format!("{issuer:?}"), key_set, token])[..40].to_owned()
}

/// The configured issuer a token claims to come from (its `iss`, not yet
/// verified: only which keys to try depends on it).
pub fn issuer_of<'a>(token: &str, issuers: &'a [IssuerConfig]) -> Result<&'a IssuerConfig, ApiError> {
    let unauthenticated = |m: &str| ApiError::Unauthenticated(m.to_owned());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthenticated("the session token is too long"));
    }
    let payload = jws::check_compact(token, jws::Profile::SessionToken)
        .map_err(|defect| ApiError::Unauthenticated(format!("the session token {defect}")))?
        .payload;
    let iss = payload.get("iss").and_then(Value::as_str).unwrap_or_default();
    issuers
        .iter()
        .find(|i| i.issuer == iss)
        .ok_or_else(|| unauthenticated("the session token is not from a trusted issuer"))
}

/// Verify an ID token of `issuer` for one of `audiences`, and its `nonce`
/// when one is expected (a browser sign-in).
pub fn verify_id_token(
    token: &str,
    issuer: &IssuerConfig,
    keys: &dyn KeySource,
    audiences: &[&str],
    nonce: Option<&str>,
    now: u64,
) -> Result<Identity, ApiError> {
    let unauthenticated = |m: &str| ApiError::Unauthenticated(m.to_owned());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthenticated("the session token is too long"));
    }
    let compact = jws::check_compact(token, jws::Profile::SessionToken)
        .map_err(|defect| ApiError::Unauthenticated(format!("the session token {defect}")))?;
    // The header as the shape check read it (jwt-simple reads it again, and
    // refuses what it cannot, when it verifies).
    let text = |name: &str| compact.header.get(name).and_then(Value::as_str);
    let alg = text("alg").ok_or_else(|| unauthenticated("the session token is not a JWT"))?;
    let kid = text("kid");
    let jwks = keys.keys(issuer, kid)?;

    // The most telling failure among the keys that could have signed it.
    let mut failure: Option<Refusal> = None;
    for jwk in jwks.get("keys").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(want), Some(have)) = (kid, jwk.get("kid").and_then(Value::as_str))
            && want != have
        {
            continue;
        }
        if !verifies_with(jwk, alg) {
            continue;
        }
        let outcome = match verify_with_jwk(token, alg, jwk, issuer, audiences, now) {
            None => continue, // the key is not of the token's algorithm
            Some(outcome) => outcome,
        };
        match outcome {
            Ok(claims) => {
                check_nonce(&claims, nonce)?;
                return identity_from_claims(claims, issuer, audiences);
            }
            Err(refusal) => {
                if failure.as_ref().is_none_or(|f| f.rank() <= refusal.rank()) {
                    failure = Some(refusal);
                }
            }
        }
    }
    Err(failure
        .map_or_else(|| unauthenticated("the session token is not signed by a trusted issuer"), Refusal::into_error))
}

/// A browser sign-in's ID token must carry the nonce it was asked for.
fn check_nonce(claims: &Claims, expected: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = expected else { return Ok(()) };
    match claims.nonce.as_deref() {
        Some(nonce) if ids::ct_eq(nonce, expected) => Ok(()),
        _ => Err(ApiError::Unauthenticated(
            "the identity provider's answer is not for this sign-in (its nonce does not match); sign in again".into(),
        )),
    }
}

/// Why one key refused a session token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The signature does not verify with this key.
    Signature,
    /// Signed by this key, but expired.
    Expired,
    /// Signed by this key, but not valid yet.
    NotYetValid,
    /// Signed by this key, but for another issuer.
    Issuer,
    /// Signed by this key, but for another audience.
    Audience,
    /// The key in the configuration is not a valid JWK (the operator's to fix).
    BadKey {
        /// The issuer whose key it is.
        issuer: String,
    },
}

impl Refusal {
    /// How telling the refusal is: a bad signature only says that this key
    /// did not sign the token, while any other refusal comes from the key that
    /// did, so it is the one to report.
    fn rank(&self) -> u8 {
        match self {
            Refusal::Signature => 0,
            Refusal::Expired | Refusal::NotYetValid | Refusal::Issuer | Refusal::Audience | Refusal::BadKey { .. } => 1,
        }
    }

    fn into_error(self) -> ApiError {
        let reason = match self {
            Refusal::Signature => "the session token's signature is not valid",
            Refusal::Expired => "the session has expired; sign in again",
            Refusal::NotYetValid => "the session token is not valid yet",
            Refusal::Issuer => "the session token is not from a trusted issuer",
            Refusal::Audience => "the session token is for another audience",
            Refusal::BadKey { issuer } => {
                return ApiError::unavailable(format!(
                    "a key of issuer {issuer} in session_issuers is not a valid JWK"
                ));
            }
        };
        ApiError::Unauthenticated(reason.into())
    }
}

type Claims = JWTClaims<serde_json::Map<String, Value>>;

/// Whether the JWK is meant for verifying `alg` signatures, as far as its
/// optional `use`, `alg` and `key_ops` members say. A key that is not is
/// skipped, as if it were not in the set.
fn verifies_with(jwk: &Value, alg: &str) -> bool {
    let use_ok = jwk.get("use").is_none_or(|u| u == "sig");
    let alg_ok = jwk.get("alg").is_none_or(|a| a == alg);
    let ops_ok =
        jwk.get("key_ops").is_none_or(|ops| ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify")));
    use_ok && alg_ok && ops_ok
}

/// `None` if the JWK cannot verify this algorithm at all.
fn verify_with_jwk(
    token: &str,
    alg: &str,
    jwk: &Value,
    issuer: &IssuerConfig,
    audiences: &[&str],
    now: u64,
) -> Option<Result<Claims, Refusal>> {
    let kty = jwk.get("kty").and_then(Value::as_str)?;
    let crv = jwk.get("crv").and_then(Value::as_str);
    let jwk_text = jwk.to_string();
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from_strings(&[&issuer.issuer])),
        allowed_audiences: Some(HashSet::from_strings(audiences)),
        time_tolerance: Some(Duration::from_secs(CLOCK_SKEW_SECONDS)),
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        max_token_length: Some(MAX_TOKEN_BYTES),
        ..Default::default()
    };
    let bad_key = || Err(Refusal::BadKey { issuer: issuer.issuer.clone() });
    let result = match (alg, kty, crv) {
        ("EdDSA", "OKP", Some("Ed25519")) => match Ed25519PublicKey::from_jwk(&jwk_text) {
            Ok(k) => k.verify_token::<serde_json::Map<String, Value>>(token, Some(options)),
            Err(_) => return Some(bad_key()),
        },
        ("ES256", "EC", Some("P-256")) => match ES256PublicKey::from_jwk(&jwk_text) {
            Ok(k) => k.verify_token::<serde_json::Map<String, Value>>(token, Some(options)),
            Err(_) => return Some(bad_key()),
        },
        ("RS256", "RSA", _) => match RS256PublicKey::from_jwk(&jwk_text) {
            Ok(k) => k.verify_token::<serde_json::Map<String, Value>>(token, Some(options)),
            Err(_) => return Some(bad_key()),
        },
        _ => return None,
    };
    let result = result.and_then(|claims| match claims.expires_at {
        Some(exp) if jws::is_expired(exp.as_secs(), now, CLOCK_SKEW_SECONDS) => Err(JWTError::TokenHasExpired.into()),
        _ => Ok(claims),
    });
    Some(result.map_err(|e| match e.downcast_ref::<JWTError>() {
        Some(JWTError::TokenHasExpired) => Refusal::Expired,
        Some(JWTError::TokenNotValidYet) | Some(JWTError::ClockDrift) => Refusal::NotYetValid,
        Some(JWTError::RequiredIssuerMismatch) | Some(JWTError::RequiredIssuerMissing) => Refusal::Issuer,
        Some(JWTError::RequiredAudienceMismatch) | Some(JWTError::RequiredAudienceMissing) => Refusal::Audience,
        _ => Refusal::Signature,
    }))
}

fn identity_from_claims(claims: Claims, issuer: &IssuerConfig, audiences: &[&str]) -> Result<Identity, ApiError> {
    let unauthenticated = |m: String| ApiError::Unauthenticated(m);
    let Some(expires_at) = claims.expires_at.map(|e| e.as_secs()) else {
        return Err(unauthenticated("the session token has no expiry".into()));
    };
    check_authorized_party(&claims, audiences)?;
    let custom = &claims.custom;
    let text = |name: &str| custom.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let subject = claims
        .subject
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| unauthenticated("the session token has no subject".into()))?;
    match custom.get("email_verified") {
        Some(Value::Bool(true)) => {}
        None if issuer.allow_missing_email_verified => {}
        None => {
            return Err(unauthenticated(format!(
                "the session does not say that its email address is verified (no `email_verified` claim); \
                 if issuer {} never sends it, an operator can set \"allow_missing_email_verified\": true on its \
                 session_issuers entry",
                issuer.issuer
            )));
        }
        Some(_) => {
            return Err(unauthenticated("the session's email address is not verified by the identity provider".into()));
        }
    }
    let email = text("email")
        .and_then(Email::parse)
        .ok_or_else(|| unauthenticated("the session token has no valid email claim (an ASCII email address)".into()))?;
    let org = session_org(custom, issuer)?;
    let role = match custom.get(&issuer.role_claim) {
        Some(Value::String(r)) if issuer.admin_values.iter().any(|a| a == r) => OrgRole::Admin,
        Some(Value::Array(rs))
            if rs.iter().any(|r| r.as_str().is_some_and(|r| issuer.admin_values.iter().any(|a| a == r))) =>
        {
            OrgRole::Admin
        }
        _ => OrgRole::Member,
    };
    let name = text("name").map(|n| n.chars().take(128).collect());
    Ok(Identity { issuer: issuer.issuer.clone(), subject, email, name, org, role, expires_at })
}

/// OIDC Core 3.1.3.7: a session for several audiences must name Lanyard as
/// its authorized party (`azp`), and an `azp` that is present must be Lanyard.
fn check_authorized_party(claims: &Claims, audiences: &[&str]) -> Result<(), ApiError> {
    let several = match &claims.audiences {
        Some(Audiences::AsSet(set)) => set.len() > 1,
        _ => false,
    };
    match claims.custom.get("azp") {
        None if !several => Ok(()),
        Some(Value::String(azp)) if audiences.contains(&azp.as_str()) => Ok(()),
        None => Err(ApiError::Unauthenticated(
            "the session token is for several audiences but names no authorized party (azp); sign in to Lanyard itself".into(),
        )),
        Some(_) => Err(ApiError::Unauthenticated(
            "the session token was issued to another application (its azp is not Lanyard's client); sign in to Lanyard itself"
                .into(),
        )),
    }
}

/// The session's organisation: one the issuer is bound to, or a refusal.
fn session_org(custom: &serde_json::Map<String, Value>, issuer: &IssuerConfig) -> Result<String, ApiError> {
    let org = match (&issuer.orgs, custom.get(&issuer.org_claim)) {
        (OrgBinding::Fixed(org), None) => return Ok(org.clone()),
        (_, Some(Value::String(claimed))) if !claimed.trim().is_empty() => claimed.trim(),
        // An array (a `groups` claim): exactly one of its values is a bound organisation.
        (binding, Some(Value::Array(values))) => {
            let mut bound = values.iter().filter_map(Value::as_str).filter(|v| binding.allows(v));
            match (bound.next(), bound.next()) {
                (Some(org), None) => return Ok(org.to_owned()),
                (None, _) if matches!(binding, OrgBinding::Fixed(_)) => return Ok(binding.orgs()[0].clone()),
                (None, _) => {
                    return Err(ApiError::Unauthenticated(format!(
                        "none of the session's `{}` is an organisation this issuer speaks for; ask an admin to \
                         add you to your organisation's group at the identity provider",
                        issuer.org_claim
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(ApiError::Unauthenticated(format!(
                        "the session's `{}` names more than one organisation; Lanyard needs exactly one",
                        issuer.org_claim
                    )));
                }
            }
        }
        (OrgBinding::AllowList(_), None) => {
            return Err(ApiError::Unauthenticated(format!(
                "the session token has no `{}` (organisation) claim",
                issuer.org_claim
            )));
        }
        (_, Some(_)) => {
            return Err(ApiError::Unauthenticated(format!(
                "the session token's `{}` (organisation) claim is not an organisation name",
                issuer.org_claim
            )));
        }
    };
    if issuer.orgs.allows(org) {
        return Ok(org.to_owned());
    }
    let shown: String = org.chars().take(MAX_ORG_LEN).filter(|c| !c.is_control()).collect();
    Err(ApiError::Unauthenticated(format!(
        "issuer {} is not trusted to speak for organisation {shown:?}; sign in through your organisation's own \
         identity provider, or ask the operator to bind that organisation to this issuer in session_issuers",
        issuer.issuer
    )))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Throwaway keys of other algorithms, from the OS.
pub(crate) mod tests {
    use super::*;
    use crate::http::Method;
    use crate::oidc::StaticKeys;

    pub(crate) const NOW: u64 = 1_800_000_000;

    pub(crate) struct TestIssuer {
        pub key: Ed25519KeyPair,
        pub config: IssuerConfig,
    }

    impl TestIssuer {
        pub fn new(issuer: &str) -> Self {
            let key = Ed25519KeyPair::generate().with_key_id("k1");
            let jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
            Self::with_entry(
                key,
                serde_json::json!({
                    "issuer": issuer, "audience": "lanyard", "orgs": ["acme"], "jwks": {"keys": [jwk]}
                }),
            )
        }

        /// An issuer whose entry is `entry` (with `key`'s public key in it).
        pub fn with_entry(key: Ed25519KeyPair, entry: Value) -> Self {
            let config: IssuerConfig = serde_json::from_value(entry).unwrap();
            TestIssuer { key, config }
        }

        pub fn token(&self, email: &str, org: &str, admin: bool) -> String {
            self.token_with(email, org, admin, |c| c)
        }

        pub fn token_with(&self, email: &str, org: &str, admin: bool, f: impl FnOnce(Claims) -> Claims) -> String {
            let mut custom = serde_json::Map::new();
            custom.insert("email".into(), email.into());
            custom.insert("email_verified".into(), true.into());
            custom.insert("org".into(), org.into());
            custom.insert("org_role".into(), if admin { "admin" } else { "member" }.into());
            let claims = jwt_simple::claims::Claims::with_custom_claims(custom, Duration::from_mins(10))
                .with_issuer(&self.config.issuer)
                .with_audience("lanyard")
                .with_subject(format!("sub-{email}"));
            let mut claims = f(claims);
            claims.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
            if claims.expires_at.is_some_and(|e| e.as_secs() > 1_000_000) {
                claims.expires_at = Some(UnixTimeStamp::from_secs(NOW + 600));
            }
            claims.invalid_before = None;
            self.key.sign(claims).unwrap()
        }
    }

    /// `text` with the character at `at` replaced by another base64url one
    /// (a change in the middle always changes the decoded bytes; the last
    /// character of a signature may carry only padding bits).
    pub(crate) fn flip_char(text: &str, at: usize) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    }

    /// A key source that must not be asked: the verification was recalled.
    struct NoKeys;

    impl KeySource for NoKeys {
        fn keys(&self, _issuer: &IssuerConfig, _kid: Option<&str>) -> Result<Value, ApiError> {
            Err(ApiError::unavailable("the keys were read although the session was verified moments ago"))
        }

        fn version(&self, _issuer: &IssuerConfig) -> Option<String> {
            Some(crate::oidc::STATIC_KEYS_VERSION.to_owned())
        }
    }

    #[test]
    fn a_verified_session_is_recalled_only_for_that_token_configuration_and_lifetime() {
        use crate::store::sessions::VERIFIED_SECONDS;
        let kv = crate::kv::MemoryKv::new();
        let cache = crate::store::Store::new(&kv, &crate::clock::SystemClock);
        let iss = TestIssuer::new("https://sso.example");
        let cfg = std::slice::from_ref(&iss.config);
        let token = iss.token("ann@ex.io", "acme", true);
        let first = verify_session(&token, cfg, &StaticKeys, &cache, NOW).unwrap();

        // Recalled: the keys are not needed again, the identity is the same.
        assert_eq!(verify_session(&token, cfg, &NoKeys, &cache, NOW + 1).unwrap(), first);
        assert!(
            kv.snapshot().iter().all(|(k, v)| !k.contains(&token) && !v.contains(&token)),
            "never the token itself"
        );

        // Another token (even a tampered copy of this one) is verified, and refused.
        let mut tampered = token.clone();
        tampered.pop();
        assert!(verify_session(&tampered, cfg, &StaticKeys, &cache, NOW + 1).is_err());
        // The same token under a changed issuer entry is verified again.
        let mut changed = iss.config.clone();
        changed.cli_client_id = Some("another-cli".into());
        let err = verify_session(&token, std::slice::from_ref(&changed), &NoKeys, &cache, NOW + 1).unwrap_err();
        assert!(format!("{err:?}").contains("keys were read"), "{err:?}");
        // Not past the token's exp, not past the cache's lifetime, not before it was verified.
        assert!(verify_session(&token, cfg, &NoKeys, &cache, first.expires_at + 1).is_err());
        assert!(verify_session(&token, cfg, &NoKeys, &cache, NOW + VERIFIED_SECONDS).is_err());
        assert!(verify_session(&token, cfg, &NoKeys, &cache, NOW - 1).is_err());
    }

    #[test]
    fn verified_sessions_are_swept_once_past_their_life() {
        use crate::store::sessions::VERIFIED_SECONDS;
        let kv = crate::kv::MemoryKv::new();
        let cache = crate::store::Store::new(&kv, &crate::clock::SystemClock);
        let iss = TestIssuer::new("https://sso.example");
        let cfg = std::slice::from_ref(&iss.config);
        for n in 0..3 {
            verify_session(&iss.token(&format!("u{n}@ex.io"), "acme", false), cfg, &StaticKeys, &cache, NOW).unwrap();
        }
        let cached =
            |kv: &crate::kv::MemoryKv| kv.snapshot().iter().filter(|(k, _)| k.starts_with("v1/session/")).count();
        assert!(cached(&kv) >= 3);
        // Verifications well after their life sweep them (a few minutes per
        // verification, so a long quiet spell is caught up over a few).
        let later = NOW + VERIFIED_SECONDS + 180;
        for n in 0..2 {
            let _ =
                verify_session(&iss.token(&format!("late{n}@ex.io"), "acme", false), cfg, &StaticKeys, &cache, later);
        }
        let left: Vec<String> =
            kv.snapshot().into_iter().map(|(k, _)| k).filter(|k| k.starts_with("v1/session/")).collect();
        assert!(left.iter().all(|k| !k.contains(&format!("/period/{}", NOW / 60))), "{left:?}");
        assert!(left.len() <= 2 + 3 + 1, "only the late entries and their log are left: {left:?}");
    }

    fn bearer(token: &str) -> Request {
        Request::new(Method::Get, "/").with_header("authorization", format!("Bearer {token}"))
    }

    #[test]
    fn verifies_a_good_session_and_reads_claims() {
        let iss = TestIssuer::new("https://sso.example");
        let s = authenticate(
            &bearer(&iss.token("Ann@Ex.io", "acme", true)),
            std::slice::from_ref(&iss.config),
            &StaticKeys,
            &NoCache,
            NOW,
        )
        .unwrap();
        assert_eq!(s.identity.email.as_str(), "ann@ex.io");
        assert_eq!(s.identity.org, "acme");
        assert_eq!(s.identity.role, OrgRole::Admin);
        assert_eq!(s.via, Via::Bearer);
        let s = authenticate(&bearer(&iss.token("bo@ex.io", "acme", false)), &[iss.config], &StaticKeys, &NoCache, NOW)
            .unwrap();
        assert_eq!(s.identity.role, OrgRole::Member);
    }

    #[test]
    fn refuses_bad_sessions() {
        let iss = TestIssuer::new("https://sso.example");
        let other = TestIssuer::new("https://evil.example");
        let cfg = [iss.config.clone()];
        let good = iss.token("a@ex.io", "acme", false);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "sign in"),
            ("not-a-jwt".into(), "not a JWT"),
            (other.token("a@ex.io", "acme", true), ""),
            (iss.token_with("a@ex.io", "acme", false, |c| c.with_audience("other")), "audience"),
            (iss.token_with("a@ex.io", "acme", false, |c| c.with_issuer("https://evil.example")), "issuer"),
            (flip_char(&good, good.len() - 10), "signature"),
        ];
        for (token, want) in cases {
            let req = if token.is_empty() { Request::new(Method::Get, "/") } else { bearer(&token) };
            let err = authenticate(&req, &cfg, &StaticKeys, &NoCache, NOW).unwrap_err();
            assert_eq!(err.status(), 401, "{want}");
            assert!(err.message().contains(want), "{} should mention {want}", err.message());
            assert!(!err.message().contains(&token) || token.is_empty());
        }
        // Expired: two minutes past expiry (beyond the skew allowance).
        let err =
            authenticate(&bearer(&good), &cfg, &StaticKeys, &NoCache, NOW + 600 + CLOCK_SKEW_SECONDS + 60).unwrap_err();
        assert!(err.message().contains("expired"), "{}", err.message());
        // A foreign issuer's key under the same kid does not verify.
        let mut forged_cfg = iss.config.clone();
        forged_cfg.issuer = "https://evil.example".into();
        let err =
            authenticate(&bearer(&other.token("a@ex.io", "acme", true)), &cfg, &StaticKeys, &NoCache, NOW).unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn missing_claims_are_refused() {
        let iss = TestIssuer::new("https://sso.example");
        let cfg = [iss.config.clone()];
        let no_org = iss.token_with("a@ex.io", "acme", false, |mut c| {
            c.custom.remove("org");
            c
        });
        assert!(
            authenticate(&bearer(&no_org), &cfg, &StaticKeys, &NoCache, NOW)
                .unwrap_err()
                .message()
                .contains("organisation")
        );
        let unverified = iss.token_with("a@ex.io", "acme", false, |mut c| {
            c.custom.insert("email_verified".into(), false.into());
            c
        });
        assert!(
            authenticate(&bearer(&unverified), &cfg, &StaticKeys, &NoCache, NOW)
                .unwrap_err()
                .message()
                .contains("verified")
        );
        let bad_email = iss.token("not-an-email", "acme", false);
        assert!(
            authenticate(&bearer(&bad_email), &cfg, &StaticKeys, &NoCache, NOW)
                .unwrap_err()
                .message()
                .contains("email")
        );
    }

    #[test]
    fn es256_and_rs256_issuers_verify() {
        let es = ES256KeyPair::generate().with_key_id("es");
        let rs = RS256KeyPair::generate(2048).unwrap().with_key_id("rs");
        let jwks = serde_json::json!({"keys": [
            serde_json::from_str::<Value>(&es.public_key().to_jwk()).unwrap(),
            serde_json::from_str::<Value>(&rs.public_key().to_jwk()).unwrap(),
        ]});
        let cfg: IssuerConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp", "audience": "lanyard", "jwks": jwks, "orgs": ["acme"],
            "org_claim": "tenant", "role_claim": "groups", "admin_values": ["lanyard-admins"]
        }))
        .unwrap();
        let claims = || {
            let mut custom = serde_json::Map::new();
            custom.insert("email".into(), "x@ex.io".into());
            custom.insert("email_verified".into(), true.into());
            custom.insert("tenant".into(), "acme".into());
            custom.insert("groups".into(), serde_json::json!(["dev", "lanyard-admins"]));
            let mut c = jwt_simple::claims::Claims::with_custom_claims(custom, Duration::from_mins(5))
                .with_issuer("https://idp")
                .with_audience("lanyard")
                .with_subject("s");
            c.issued_at = Some(UnixTimeStamp::from_secs(NOW));
            c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 300));
            c.invalid_before = None;
            c
        };
        for token in [es.sign(claims()).unwrap(), rs.sign(claims()).unwrap()] {
            let id = verify_session(&token, std::slice::from_ref(&cfg), &StaticKeys, &NoCache, NOW).unwrap();
            assert_eq!((id.org.as_str(), id.role), ("acme", OrgRole::Admin));
        }
    }

    #[test]
    fn csrf_is_required_only_for_cookie_writes() {
        let iss = TestIssuer::new("https://sso.example");
        let cfg = [iss.config.clone()];
        let token = iss.token("a@ex.io", "acme", true);
        let cookie = format!("lanyard_session={token}");
        let post = Request::new(Method::Post, "/").with_header("cookie", cookie.clone());
        let session = authenticate(&post, &cfg, &StaticKeys, &NoCache, NOW).unwrap();
        assert_eq!(check_csrf(&post, &session), Err(ApiError::CsrfRequired));
        let wrong = post.clone().with_header(CSRF_HEADER, "nope");
        assert_eq!(check_csrf(&wrong, &session), Err(ApiError::CsrfRequired));
        let right = post.clone().with_header(CSRF_HEADER, csrf_token(&token));
        assert_eq!(check_csrf(&right, &session), Ok(()));
        let get = Request::new(Method::Get, "/").with_header("cookie", cookie);
        assert_eq!(check_csrf(&get, &authenticate(&get, &cfg, &StaticKeys, &NoCache, NOW).unwrap()), Ok(()));
        let bearer_post = Request::new(Method::Post, "/").with_header("authorization", format!("Bearer {token}"));
        assert_eq!(
            check_csrf(&bearer_post, &authenticate(&bearer_post, &cfg, &StaticKeys, &NoCache, NOW).unwrap()),
            Ok(())
        );
    }

    fn refusal(token: &str, cfg: &[IssuerConfig]) -> String {
        let err = verify_session(token, cfg, &StaticKeys, &NoCache, NOW).unwrap_err();
        assert_eq!(err.status(), 401, "{}", err.message());
        err.message()
    }

    #[test]
    fn an_issuer_speaks_only_for_the_organisations_it_is_bound_to() {
        // An allow-list: the org claim picks one of them.
        let listed = TestIssuer::new("https://sso.acme");
        let cfg = [listed.config.clone()];
        assert_eq!(
            verify_session(&listed.token("a@ex.io", "acme", true), &cfg, &StaticKeys, &NoCache, NOW).unwrap().org,
            "acme"
        );
        let message = refusal(&listed.token("a@ex.io", "globex", true), &cfg);
        assert!(message.contains("globex") && message.contains("not trusted"), "{message}");
        // A fixed organisation: the claim may be absent or the same, never another.
        let key = Ed25519KeyPair::generate().with_key_id("k1");
        let jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
        let fixed = TestIssuer::with_entry(
            key,
            serde_json::json!({"issuer": "https://sso.globex", "audience": "lanyard", "org": "globex", "jwks": {"keys": [jwk]}}),
        );
        let cfg = [listed.config.clone(), fixed.config.clone()];
        let no_claim = fixed.token_with("g@ex.io", "x", true, |mut c| {
            c.custom.remove("org");
            c
        });
        assert_eq!(verify_session(&no_claim, &cfg, &StaticKeys, &NoCache, NOW).unwrap().org, "globex");
        assert_eq!(
            verify_session(&fixed.token("g@ex.io", "globex", true), &cfg, &StaticKeys, &NoCache, NOW).unwrap().org,
            "globex"
        );
        assert!(refusal(&fixed.token("g@ex.io", "acme", true), &cfg).contains("acme"));
        // Neither issuer's key speaks for the other's organisations.
        assert!(refusal(&listed.token("g@ex.io", "globex", true), &cfg).contains("globex"));
    }

    #[test]
    fn the_email_must_be_verified_unless_the_issuer_never_says() {
        let iss = TestIssuer::new("https://sso.example");
        let without = |c: Claims| {
            let mut c = c;
            c.custom.remove("email_verified");
            c
        };
        let missing = iss.token_with("a@ex.io", "acme", false, without);
        assert!(refusal(&missing, std::slice::from_ref(&iss.config)).contains("allow_missing_email_verified"));
        let as_text = iss.token_with("a@ex.io", "acme", false, |mut c| {
            c.custom.insert("email_verified".into(), "true".into());
            c
        });
        assert!(refusal(&as_text, std::slice::from_ref(&iss.config)).contains("not verified"));
        let mut lenient = iss.config.clone();
        lenient.allow_missing_email_verified = true;
        assert!(verify_session(&missing, std::slice::from_ref(&lenient), &StaticKeys, &NoCache, NOW).is_ok());
        let unverified = iss.token_with("a@ex.io", "acme", false, |mut c| {
            c.custom.insert("email_verified".into(), false.into());
            c
        });
        assert!(refusal(&unverified, &[lenient]).contains("not verified"), "false is refused even by a lenient issuer");
    }

    #[test]
    fn look_alike_emails_are_refused() {
        let iss = TestIssuer::new("https://sso.example");
        let kelvin = iss.token("admin@\u{212A}acme.example", "acme", true);
        assert!(refusal(&kelvin, &[iss.config]).contains("ASCII"));
    }

    #[test]
    fn a_session_for_several_audiences_must_name_lanyard_as_its_authorized_party() {
        let iss = TestIssuer::new("https://sso.example");
        let cfg = [iss.config.clone()];
        let token = |auds: &[&str], azp: Option<&str>| {
            iss.token_with("a@ex.io", "acme", false, |c| {
                let mut c = c.with_audiences(auds.iter().copied().collect::<HashSet<_>>());
                if let Some(azp) = azp {
                    c.custom.insert("azp".into(), azp.into());
                }
                c
            })
        };
        assert!(refusal(&token(&["other-app", "lanyard"], None), &cfg).contains("azp"));
        assert!(refusal(&token(&["other-app", "lanyard"], Some("other-app")), &cfg).contains("another application"));
        assert!(
            verify_session(&token(&["other-app", "lanyard"], Some("lanyard")), &cfg, &StaticKeys, &NoCache, NOW)
                .is_ok()
        );
        assert!(
            verify_session(&token(&["lanyard"], None), &cfg, &StaticKeys, &NoCache, NOW).is_ok(),
            "one audience needs no azp"
        );
        assert!(refusal(&token(&["lanyard"], Some("other-app")), &cfg).contains("another application"));
        assert!(refusal(&token(&["other-app", "third"], Some("lanyard")), &cfg).contains("audience"));
    }

    #[test]
    fn keys_not_meant_for_verifying_this_algorithm_are_not_used() {
        let iss = TestIssuer::new("https://sso.example");
        let token = iss.token("a@ex.io", "acme", false);
        let jwk: Value = serde_json::from_str(&iss.key.public_key().to_jwk()).unwrap();
        let with = |member: &str, value: Value| {
            let mut jwk = jwk.clone();
            jwk[member] = value;
            jwk
        };
        let entry = |keys: Vec<Value>| {
            let mut cfg = iss.config.clone();
            cfg.keys = crate::config::IssuerKeys::Static(serde_json::json!({ "keys": keys }));
            cfg
        };
        let unusable = [
            with("use", "enc".into()),
            with("alg", "ES256".into()),
            with("alg", "none".into()),
            with("key_ops", serde_json::json!([])),
            with("key_ops", serde_json::json!(["encrypt"])),
            with("key_ops", serde_json::json!(["sign"])),
            with("key_ops", "verify".into()),
        ];
        for key in unusable {
            let err = verify_session(&token, &[entry(vec![key.clone()])], &StaticKeys, &NoCache, NOW).unwrap_err();
            assert_eq!(err.status(), 401, "{key}: {}", err.message());
            // ...and it does not stop a usable key of the set from verifying.
            assert!(
                verify_session(&token, &[entry(vec![key.clone(), jwk.clone()])], &StaticKeys, &NoCache, NOW).is_ok(),
                "{key}"
            );
        }
        for usable in
            [with("use", "sig".into()), with("alg", "EdDSA".into()), with("key_ops", serde_json::json!(["verify"]))]
        {
            assert!(
                verify_session(&token, &[entry(vec![usable.clone()])], &StaticKeys, &NoCache, NOW).is_ok(),
                "{usable}"
            );
        }
    }

    #[test]
    fn a_token_issued_or_valid_only_in_the_future_is_refused_and_a_browser_sign_in_needs_its_nonce() {
        let iss = TestIssuer::new("https://sso.example");
        let sign = |iat: u64, nbf: Option<u64>, nonce: Option<&str>| {
            let mut custom = serde_json::Map::new();
            custom.insert("email".into(), "a@ex.io".into());
            custom.insert("email_verified".into(), true.into());
            custom.insert("org".into(), "acme".into());
            let mut c = jwt_simple::claims::Claims::with_custom_claims(custom, Duration::from_mins(10))
                .with_issuer(&iss.config.issuer)
                .with_audience("lanyard")
                .with_subject("s");
            c.issued_at = Some(UnixTimeStamp::from_secs(iat));
            c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
            c.invalid_before = nbf.map(UnixTimeStamp::from_secs);
            c.nonce = nonce.map(str::to_owned);
            iss.key.sign(c).unwrap()
        };
        let cfg = std::slice::from_ref(&iss.config);
        assert!(verify_session(&sign(NOW - 5, None, None), cfg, &StaticKeys, &NoCache, NOW).is_ok());
        let future_iat = sign(NOW + 600, None, None);
        assert!(refusal(&future_iat, cfg).contains("not valid yet"), "iat in the future");
        let future_nbf = sign(NOW - 5, Some(NOW + 600), None);
        assert!(refusal(&future_nbf, cfg).contains("not valid yet"), "nbf in the future");
        let verify = |token: &str, nonce| verify_id_token(token, &iss.config, &StaticKeys, &["lanyard"], nonce, NOW);
        let with_nonce = sign(NOW - 5, None, Some("n-1"));
        assert!(verify(&with_nonce, Some("n-1")).is_ok());
        assert!(verify(&with_nonce, Some("n-2")).unwrap_err().message().contains("nonce"));
        assert!(verify(&sign(NOW - 5, None, None), Some("n-1")).unwrap_err().message().contains("nonce"));
    }

    /// Claims that name `email` twice when serialized (serde_json writes
    /// what it is given): what a careless or hostile signer could emit.
    struct TwiceNamed;

    impl serde::Serialize for TwiceNamed {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("email", "a@ex.io")?;
            map.serialize_entry("email_verified", &true)?;
            map.serialize_entry("org", "acme")?;
            map.serialize_entry("org_role", "member")?;
            map.serialize_entry("email", "boss@ex.io")?;
            map.end()
        }
    }

    #[test]
    fn a_signed_session_that_names_a_claim_twice_is_refused() {
        let iss = TestIssuer::new("https://sso.example");
        let claims = jwt_simple::claims::Claims::with_custom_claims(TwiceNamed, Duration::from_mins(10))
            .with_issuer(&iss.config.issuer)
            .with_audience("lanyard")
            .with_subject("sub-a")
            .with_nonce("n");
        let mut claims = claims;
        claims.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
        claims.expires_at = Some(UnixTimeStamp::from_secs(NOW + 600));
        claims.invalid_before = None;
        let token = iss.key.sign(claims).unwrap();
        let payload = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(payload.matches("\"email\":").count(), 2, "the signer really wrote it twice: {payload}");
        let err = verify_session(&token, std::slice::from_ref(&iss.config), &StaticKeys, &NoCache, NOW).unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(err.message().contains("names a member twice"), "{}", err.message());
    }

    #[test]
    fn a_session_expires_at_the_second_its_exp_and_skew_allow() {
        let iss = TestIssuer::new("https://sso.example");
        let cfg = std::slice::from_ref(&iss.config);
        let token = iss.token("a@ex.io", "acme", false); // exp = NOW + 600
        let last = NOW + 600 + CLOCK_SKEW_SECONDS - 1;
        assert!(verify_session(&token, cfg, &StaticKeys, &NoCache, last).is_ok());
        let err = verify_session(&token, cfg, &StaticKeys, &NoCache, last + 1).unwrap_err();
        assert!(err.message().contains("expired"), "{}", err.message());
    }

    /// The classic JWT attacks, each against a real signed session of a
    /// trusted issuer: every one is `401`, and none reaches a verified identity.
    #[test]
    fn forged_and_tampered_sessions_are_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use serde_json::json;
        let iss = TestIssuer::new("https://sso.example");
        let cfg = std::slice::from_ref(&iss.config);
        let good = iss.token("a@ex.io", "acme", true);
        assert!(verify_session(&good, cfg, &StaticKeys, &NoCache, NOW).is_ok());
        let parts: Vec<&str> = good.split('.').collect();
        let payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        let header = |h: Value| B64.encode(h.to_string());
        let body = |p: &Value| B64.encode(p.to_string());
        let x = iss.config.keys.clone();
        let crate::config::IssuerKeys::Static(jwks) = x else { unreachable!() };
        let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
        let hs256 = {
            use jwt_simple::prelude::MACLike as _;
            let key = HS256Key::from_bytes(public_x.as_bytes()).with_key_id("k1");
            let claims: Claims = serde_json::from_value(payload.clone()).unwrap();
            key.authenticate(claims).unwrap()
        };
        let attacker = Ed25519KeyPair::generate().with_key_id("k1");
        let attacker_jwk: Value = serde_json::from_str(&attacker.public_key().to_jwk()).unwrap();
        let mut admin_payload = payload.clone();
        admin_payload["email"] = "boss@ex.io".into();
        let attacks: Vec<(&str, String)> = vec![
            ("alg none", format!("{}.{}.", header(json!({"alg": "none", "kid": "k1"})), parts[1])),
            ("alg none, no dot", format!("{}.{}", header(json!({"alg": "none"})), parts[1])),
            ("HS256 keyed with the public key", hs256),
            (
                "signed by another key claiming kid k1",
                attacker.sign(serde_json::from_value::<Claims>(payload.clone()).unwrap()).unwrap(),
            ),
            (
                "the attacker's key offered in jwk, jku and x5u headers",
                format!(
                    "{}.{}.{}",
                    header(json!({"alg": "EdDSA", "kid": "k1", "jwk": attacker_jwk,
                        "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"})),
                    parts[1],
                    attacker
                        .sign(serde_json::from_value::<Claims>(payload.clone()).unwrap())
                        .unwrap()
                        .rsplit('.')
                        .next()
                        .unwrap()
                ),
            ),
            ("a payload changed after signing", format!("{}.{}.{}", parts[0], body(&admin_payload), parts[2])),
            ("a signature changed", format!("{}.{}.{}", parts[0], parts[1], flip_char(parts[2], 10))),
            (
                "an injected kid",
                format!("{}.{}.{}", header(json!({"alg": "EdDSA", "kid": "../../../etc/passwd"})), parts[1], parts[2]),
            ),
            ("oversized", format!("{}.{}.{}", parts[0], "A".repeat(MAX_TOKEN_BYTES), parts[2])),
            ("not base64", format!("{}.{}.{}", parts[0], "%%%", parts[2])),
            ("two parts", format!("{}.{}", parts[0], parts[1])),
            ("padded base64", format!("{}.{}=.{}", parts[0], parts[1], parts[2])),
            ("non-zero trailing bits in the signature", {
                let last = parts[2].chars().last().unwrap();
                let bumped = if last == 'A' { 'B' } else { 'A' };
                format!("{}.{}.{}{bumped}", parts[0], parts[1], &parts[2][..parts[2].len() - 1])
            }),
            (
                "a crit header",
                format!("{}.{}.{}", header(json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]})), parts[1], parts[2]),
            ),
        ];
        for (what, token) in attacks {
            let err = verify_session(&token, cfg, &StaticKeys, &NoCache, NOW).expect_err(what);
            assert_eq!(err.status(), 401, "{what}: {}", err.message());
        }
    }
}
