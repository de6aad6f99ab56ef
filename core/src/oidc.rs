//! The organisation's identity provider, as Lanyard reads it: its discovery
//! document, its signing keys, and the authorization-code exchange.
//!
//! # Caching, and why a flood of bad tokens cannot become a flood of fetches
//!
//! A discovered issuer's metadata (`<issuer>/.well-known/openid-configuration`)
//! and key set (its `jwks_uri`) are kept in the store with the time they were
//! read, so every component instance shares one copy. A copy is used for the
//! issuer's `cache_seconds`; then it is read again. A token that names a key
//! (`kid`) the copy does not have makes the key set be read again at once,
//! which is how a rotation at the provider is followed, but only when the copy
//! is at least `refetch_interval_seconds` old, and only by the request that
//! wins that interval's counter (`increment`, which every Spin backend does
//! atomically). Every other request uses the copy it has. So tokens with
//! random `kid`s, however many and from however many instances, cause at most
//! one read of the provider per interval.
//!
//! When the provider cannot be reached, an expired copy is still used for up
//! to [`MAX_STALE_SECONDS`] (sign-ins keep working through a provider's short
//! outage); with no usable copy the caller gets `503 unavailable`, naming the
//! provider (in the log) and never echoing what it answered, and the failure
//! is remembered for `refetch_interval_seconds`, during which nobody asks the
//! provider again: an unreachable provider costs one attempt per interval,
//! not one per incoming token.
//!
//! Provider URLs must be `https://`, or `http://` to a loopback host (a
//! provider on the same machine, as in the tests): the discovery document
//! decides where the keys come from, so it must come from where the
//! configuration says.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{IssuerConfig, IssuerKeys};
use crate::error::ApiError;
use crate::http::{authority_host, is_loopback_host};
use crate::kv::KeyValue;
use crate::outbound::{Outbound, OutboundRequest};
use crate::store::keys;

/// How long past its expiry a cached copy is still used while the provider
/// cannot be reached.
pub const MAX_STALE_SECONDS: u64 = 24 * 3600;
/// The most keys a provider's key set may hold.
pub const MAX_KEYS: usize = 100;

/// Whether `url` may be a provider's URL: `https://`, or `http://` to a
/// loopback host; no user, query or fragment.
pub fn check_provider_url(url: &str) -> Result<(), String> {
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| format!("{url:?} is not an absolute URL (https://...)"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority_host(authority);
    if authority.is_empty() || authority.contains('@') || url.contains(['?', '#']) || url.contains(char::is_whitespace)
    {
        return Err(format!("{url:?} must be a plain URL: a host, an optional path, no user, query or fragment"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        _ => Err(format!("{url:?} must be an https:// URL (plain http only to a loopback provider)")),
    }
}

/// A random value for a sign-in: 32 bytes from `random`, base64url (43
/// characters), as a `state`, a `nonce` or a PKCE verifier.
pub fn random_value(random: &dyn crate::random::Random) -> Result<String, crate::random::NoRandomness> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE `S256` challenge of a verifier (RFC 7636 4.2): base64url of its SHA-256.
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// What Lanyard uses of a provider's discovery document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer, exactly as configured (checked).
    pub issuer: String,
    /// Where a browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where a code is exchanged for tokens.
    pub token_endpoint: String,
    /// Where the signing keys are.
    pub jwks_uri: String,
    /// Where a device sign-in starts, if the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
}

/// A cached copy of something read from a provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached<T> {
    /// Unix seconds when it was read.
    fetched_at: u64,
    value: T,
}

/// The provider side of one request: the store, outbound HTTP and the time.
pub struct Providers<'a> {
    kv: &'a dyn KeyValue,
    outbound: &'a dyn Outbound,
    now: u64,
}

/// Where the keys that verify an issuer's tokens come from.
pub trait KeySource {
    /// The issuer's key set (`{"keys": [...]}`), current enough for a token
    /// naming `kid`.
    fn keys(&self, issuer: &IssuerConfig, kid: Option<&str>) -> Result<Value, ApiError>;

    /// What names the key set [`KeySource::keys`] would answer with now,
    /// read without parsing a key: part of the key a verification is
    /// remembered under ([`crate::identity::VerifiedSessions`]), so that once
    /// the key set changes (a rotation followed) no earlier verification is
    /// recalled. `None` when there is nothing to name it by (then every
    /// token is verified).
    fn version(&self, issuer: &IssuerConfig) -> Option<String>;
}

impl<'a> Providers<'a> {
    /// The providers as seen from one request.
    pub fn new(kv: &'a dyn KeyValue, outbound: &'a dyn Outbound, now: u64) -> Self {
        Providers { kv, outbound, now }
    }

    /// The issuer's discovery document, cached.
    pub fn metadata(&self, issuer: &IssuerConfig) -> Result<ProviderMetadata, ApiError> {
        if issuer.keys != IssuerKeys::Discovered {
            return Err(ApiError::unavailable(format!(
                "issuer {} has static keys (`jwks`) and no discovery document: it cannot sign people in here",
                issuer.issuer
            )));
        }
        let key = keys::provider_metadata(&issuer.issuer);
        let cached: Option<Cached<ProviderMetadata>> = self.read(&key);
        if let Some(c) = &cached
            && self.now.saturating_sub(c.fetched_at) < issuer.cache_seconds
        {
            return Ok(c.value.clone());
        }
        match self.fetch_metadata(issuer) {
            Ok(fresh) => {
                self.write(&key, &Cached { fetched_at: self.now, value: fresh.clone() });
                Ok(fresh)
            }
            Err(e) => self.stale_or(cached, issuer, &e),
        }
    }

    fn fetch_metadata(&self, issuer: &IssuerConfig) -> Result<ProviderMetadata, String> {
        let url = format!("{}/.well-known/openid-configuration", issuer.issuer.trim_end_matches('/'));
        let doc: Value = self.get_json(&url)?;
        let meta: ProviderMetadata =
            serde_json::from_value(doc).map_err(|e| format!("its discovery document at {url} is not usable ({e})"))?;
        // OpenID Connect Discovery 1.0, 4.3: the issuer must be exactly the one asked for.
        if meta.issuer != issuer.issuer {
            return Err(format!(
                "its discovery document names issuer {:?}, not {:?}: set `issuer` to exactly the provider's issuer URL",
                meta.issuer, issuer.issuer
            ));
        }
        for url in [&meta.authorization_endpoint, &meta.token_endpoint, &meta.jwks_uri]
            .into_iter()
            .chain(meta.device_authorization_endpoint.as_ref())
        {
            check_provider_url(url).map_err(|e| format!("its discovery document names an endpoint that {e}"))?;
        }
        Ok(meta)
    }

    /// The key set, refetched when a token names a key it lacks (see the
    /// module documentation for the bounds).
    fn discovered_keys(&self, issuer: &IssuerConfig, kid: Option<&str>) -> Result<Value, ApiError> {
        let key = keys::provider_jwks(&issuer.issuer);
        let cached: Option<Cached<Value>> = self.read(&key);
        let Some(c) = cached else {
            // Nothing to use at all: read it (the first request of a deployment),
            // unless a read failed within the interval: then fail fast, so that
            // an unreachable provider is not asked once per incoming token.
            let failed = keys::provider_jwks_failed(&issuer.issuer);
            let last_failure: Option<u64> = self.read(&failed);
            if last_failure.is_some_and(|at| self.now.saturating_sub(at) < issuer.refetch_interval_seconds) {
                return Err(provider_unavailable(
                    issuer,
                    "its keys could not be read a moment ago; not asking again yet",
                ));
            }
            return match self.fetch_jwks(issuer) {
                Ok(fresh) => {
                    self.write(&key, &Cached { fetched_at: self.now, value: fresh.clone() });
                    Ok(fresh)
                }
                Err(e) => {
                    self.write(&failed, &self.now);
                    Err(provider_unavailable(issuer, &e))
                }
            };
        };
        let age = self.now.saturating_sub(c.fetched_at);
        let unknown_kid = kid.is_some_and(|kid| !has_kid(&c.value, kid));
        let wanted = age >= issuer.cache_seconds || (unknown_kid && age >= issuer.refetch_interval_seconds);
        if !wanted || !self.win_refetch(issuer) {
            return self.stale_or(Some(c), issuer, "its cached keys are too old and were not read again");
        }
        match self.fetch_jwks(issuer) {
            Ok(fresh) => {
                self.write(&key, &Cached { fetched_at: self.now, value: fresh.clone() });
                Ok(fresh)
            }
            Err(e) => self.stale_or(Some(c), issuer, &e),
        }
    }

    /// Whether this request is the one that reads the key set again in the
    /// current interval.
    fn win_refetch(&self, issuer: &IssuerConfig) -> bool {
        let window = self.now / issuer.refetch_interval_seconds;
        match self.kv.increment(&keys::provider_refetch(&issuer.issuer, window), 1) {
            Ok(1) => {
                // The previous window's counter is no longer needed (best effort).
                let _ = self.kv.delete(&keys::provider_refetch(&issuer.issuer, window.saturating_sub(1)));
                true
            }
            _ => false,
        }
    }

    fn fetch_jwks(&self, issuer: &IssuerConfig) -> Result<Value, String> {
        let meta = self.metadata(issuer).map_err(|e| detail(&e))?;
        let jwks: Value = self.get_json(&meta.jwks_uri)?;
        match jwks.get("keys").and_then(Value::as_array) {
            Some(keys) if keys.len() <= MAX_KEYS && keys.iter().all(Value::is_object) => Ok(jwks),
            Some(_) => Err(format!(
                "its key set at {} has more than {MAX_KEYS} keys or a key that is not an object",
                meta.jwks_uri
            )),
            None => Err(format!("its key set at {} is not a JWKS document ({{\"keys\": [...]}})", meta.jwks_uri)),
        }
    }

    /// The cached copy, even past its `cache_seconds`, while it is within
    /// [`MAX_STALE_SECONDS`] of them; older (or none) is unavailable, for `why`.
    fn stale_or<T>(&self, cached: Option<Cached<T>>, issuer: &IssuerConfig, why: &str) -> Result<T, ApiError> {
        match cached {
            Some(c) if self.now.saturating_sub(c.fetched_at) <= issuer.cache_seconds + MAX_STALE_SECONDS => Ok(c.value),
            _ => Err(provider_unavailable(issuer, why)),
        }
    }

    fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self.outbound.send(&OutboundRequest::get(url)).map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("{url} answered HTTP {}", response.status));
        }
        serde_json::from_slice(&response.body).map_err(|_| format!("{url} did not answer JSON"))
    }

    /// Exchange an authorization code at the token endpoint; the ID token it
    /// returns, not yet verified.
    pub fn exchange_code(&self, issuer: &IssuerConfig, code: &Exchange<'_>) -> Result<String, ExchangeError> {
        let meta = self.metadata(issuer).map_err(|e| ExchangeError::Unavailable(detail(&e)))?;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.code),
            ("redirect_uri", code.redirect_uri),
            ("code_verifier", code.verifier),
        ];
        let request = match code.client_secret {
            // RFC 6749 2.3.1: both parts form-encoded, then Basic.
            Some(secret) => {
                use base64::Engine as _;
                let pair = format!(
                    "{}:{}",
                    crate::outbound::form_encode(&issuer.client_id),
                    crate::outbound::form_encode(secret)
                );
                let basic = base64::engine::general_purpose::STANDARD.encode(pair);
                OutboundRequest::post_form(&meta.token_endpoint, crate::outbound::form(&pairs))
                    .with_header("authorization", format!("Basic {basic}"))
            }
            None => {
                pairs.push(("client_id", &issuer.client_id));
                OutboundRequest::post_form(&meta.token_endpoint, crate::outbound::form(&pairs))
            }
        };
        let response = self.outbound.send(&request).map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
        let body: Value = serde_json::from_slice(&response.body).map_err(|_| {
            ExchangeError::Unavailable(format!("the token endpoint answered HTTP {} without JSON", response.status))
        })?;
        if response.status != 200 {
            let code = body.get("error").and_then(Value::as_str).unwrap_or("unknown_error");
            return Err(ExchangeError::Refused { error: printable(code, 64) });
        }
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ExchangeError::Unavailable("the token endpoint returned no id_token".into()))
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        // An unreadable or undecodable copy is as good as none: it is read again.
        self.kv.get(key).ok().flatten().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    fn write<T: Serialize>(&self, key: &str, value: &T) {
        // A copy that cannot be stored is read again next time; nothing is lost.
        if let Ok(bytes) = serde_json::to_vec(value) {
            let _ = self.kv.set(key, &bytes);
        }
    }
}

impl KeySource for Providers<'_> {
    fn keys(&self, issuer: &IssuerConfig, kid: Option<&str>) -> Result<Value, ApiError> {
        match &issuer.keys {
            IssuerKeys::Static(jwks) => Ok(jwks.clone()),
            IssuerKeys::Discovered => self.discovered_keys(issuer, kid),
        }
    }

    fn version(&self, issuer: &IssuerConfig) -> Option<String> {
        match &issuer.keys {
            // The keys are in the issuer entry, which the remembered key covers.
            IssuerKeys::Static(_) => Some(STATIC_KEYS_VERSION.to_owned()),
            // The stored copy, which changes (with its `fetched_at`) on every read.
            IssuerKeys::Discovered => {
                let copy = self.kv.get(&keys::provider_jwks(&issuer.issuer)).ok()??;
                Some(crate::ids::digest_hex(&["key-set", &String::from_utf8_lossy(&copy)]))
            }
        }
    }
}

/// The version of a key set given in the configuration.
pub(crate) const STATIC_KEYS_VERSION: &str = "static";

/// Only the keys given in the configuration (no store, no network).
pub struct StaticKeys;

impl KeySource for StaticKeys {
    fn keys(&self, issuer: &IssuerConfig, _kid: Option<&str>) -> Result<Value, ApiError> {
        match &issuer.keys {
            IssuerKeys::Static(jwks) => Ok(jwks.clone()),
            IssuerKeys::Discovered => Err(provider_unavailable(issuer, "its keys are not available here")),
        }
    }

    fn version(&self, issuer: &IssuerConfig) -> Option<String> {
        matches!(issuer.keys, IssuerKeys::Static(_)).then(|| STATIC_KEYS_VERSION.to_owned())
    }
}

/// What a code exchange sends.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The authorization code from the callback.
    pub code: &'a str,
    /// The redirect URI the sign-in was started with.
    pub redirect_uri: &'a str,
    /// The PKCE code verifier.
    pub verifier: &'a str,
    /// The client secret of a confidential client; `None` for a public one.
    pub client_secret: Option<&'a str>,
}

/// Why a code exchange gave no ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// The provider refused the code (its OAuth `error`, printable).
    Refused {
        /// The `error` code.
        error: String,
    },
    /// The provider could not be asked, or answered nonsense.
    Unavailable(String),
}

fn has_kid(jwks: &Value, kid: &str) -> bool {
    jwks.get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(|k| k.get("kid").and_then(Value::as_str) == Some(kid)))
}

/// What an error says for the log: an `unavailable`'s detail, else its message.
pub fn detail(e: &ApiError) -> String {
    match e {
        ApiError::Unavailable { detail } => detail.clone(),
        other => other.message(),
    }
}

fn provider_unavailable(issuer: &IssuerConfig, reason: &str) -> ApiError {
    ApiError::unavailable(format!("the identity provider {} cannot be used: {reason}", issuer.issuer))
}

/// At most `max` printable ASCII characters of text from outside.
pub fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryKv;
    use crate::outbound::{OutboundError, OutboundResponse};
    use std::cell::RefCell;

    const ISS: &str = "https://idp.example";

    /// A provider that answers from a table and records what it was asked
    /// (the provider is not under test here; `tests/api` uses real Dex).
    struct Recorded {
        answers: RefCell<std::collections::BTreeMap<String, (u16, String)>>,
        asked: RefCell<Vec<String>>,
    }

    impl Recorded {
        fn new(jwks: &Value) -> Self {
            let meta = serde_json::json!({
                "issuer": ISS, "authorization_endpoint": format!("{ISS}/auth"),
                "token_endpoint": format!("{ISS}/token"), "jwks_uri": format!("{ISS}/keys"),
            });
            let answers = [
                (format!("{ISS}/.well-known/openid-configuration"), (200, meta.to_string())),
                (format!("{ISS}/keys"), (200, jwks.to_string())),
            ];
            Recorded { answers: RefCell::new(answers.into_iter().collect()), asked: RefCell::new(Vec::new()) }
        }
        fn count(&self, suffix: &str) -> usize {
            self.asked.borrow().iter().filter(|u| u.ends_with(suffix)).count()
        }
    }

    impl Outbound for Recorded {
        fn send(&self, request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
            self.asked.borrow_mut().push(request.url.clone());
            match self.answers.borrow().get(&request.url) {
                Some((status, body)) => Ok(OutboundResponse { status: *status, body: body.clone().into_bytes() }),
                None => Err(OutboundError::Failed { url: request.url.clone(), reason: "connection refused".into() }),
            }
        }
    }

    fn issuer() -> IssuerConfig {
        serde_json::from_value(serde_json::json!({
            "issuer": ISS, "client_id": "lanyard", "org": "acme", "refetch_interval_seconds": 60
        }))
        .unwrap()
    }

    fn jwks(kids: &[&str]) -> Value {
        serde_json::json!({"keys": kids.iter().map(|k| serde_json::json!({"kid": k, "kty": "OKP"})).collect::<Vec<_>>()})
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b_and_random_values_are_43_characters() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let value = random_value(&crate::random::SystemRandom).unwrap();
        assert_eq!(value.len(), 43);
        assert_ne!(value, random_value(&crate::random::SystemRandom).unwrap());
    }

    #[test]
    fn provider_urls_are_https_or_loopback_http() {
        for ok in [
            "https://idp.example",
            "https://idp.example/dex",
            "http://127.0.0.1:5556/dex",
            "http://localhost:1",
            "http://[::1]:8/x",
        ] {
            assert_eq!(check_provider_url(ok), Ok(()), "{ok}");
        }
        for bad in
            ["http://idp.example", "ftp://x", "idp.example", "https://u@idp.example", "https://idp?x", "https://"]
        {
            assert!(check_provider_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_per_interval() {
        let kv = MemoryKv::new();
        let idp = Recorded::new(&jwks(&["k1"]));
        let at = |now| Providers::new(&kv, &idp, now);
        let iss = issuer();
        assert!(has_kid(&at(1000).keys(&iss, Some("k1")).unwrap(), "k1"));
        assert_eq!((idp.count("/keys"), idp.count("/openid-configuration")), (1, 1));
        // A flood of random kids within the interval: no read at all (the copy is young).
        for i in 0..50 {
            at(1001 + i % 30).keys(&iss, Some(&format!("random-{i}"))).unwrap();
        }
        assert_eq!(idp.count("/keys"), 1);
        // The provider rotates; once the copy is an interval old, one request reads again.
        idp.answers.borrow_mut().insert(format!("{ISS}/keys"), (200, jwks(&["k2"]).to_string()));
        for i in 0..50 {
            at(1061 + i % 5).keys(&iss, Some(&format!("random-{i}"))).unwrap();
        }
        assert_eq!(idp.count("/keys"), 2, "one refetch for the whole flood");
        assert!(has_kid(&at(1070).keys(&iss, Some("k2")).unwrap(), "k2"), "the rotated key is used");
        assert_eq!(idp.count("/keys"), 2);
    }

    #[test]
    fn an_unreachable_provider_is_survived_on_a_recent_copy_only() {
        let kv = MemoryKv::new();
        let idp = Recorded::new(&jwks(&["k1"]));
        let iss = issuer();
        Providers::new(&kv, &idp, 1000).keys(&iss, None).unwrap();
        idp.answers.borrow_mut().clear();
        let later = 1000 + iss.cache_seconds + 10;
        assert!(has_kid(&Providers::new(&kv, &idp, later).keys(&iss, None).unwrap(), "k1"), "stale but usable");
        let much_later = 1000 + iss.cache_seconds + MAX_STALE_SECONDS + 10;
        let err = Providers::new(&kv, &idp, much_later).keys(&iss, None).unwrap_err();
        assert!(matches!(&err, ApiError::Unavailable { detail } if detail.contains(ISS)), "{err:?}");
        let cold = MemoryKv::new();
        let asked = idp.asked.borrow().len();
        for i in 0..20 {
            assert_eq!(Providers::new(&cold, &idp, 1000 + i).keys(&iss, Some("k")).unwrap_err().status(), 503);
        }
        assert_eq!(
            idp.asked.borrow().len(),
            asked + 1,
            "a provider that failed is not asked again within the interval"
        );
        Providers::new(&cold, &idp, 1000 + iss.refetch_interval_seconds).keys(&iss, None).unwrap_err();
        assert_eq!(idp.asked.borrow().len(), asked + 2, "and is asked again after it");
    }

    #[test]
    fn a_discovery_document_for_another_issuer_is_refused() {
        let kv = MemoryKv::new();
        let idp = Recorded::new(&jwks(&["k1"]));
        let meta = serde_json::json!({
            "issuer": "https://evil.example", "authorization_endpoint": "https://evil.example/a",
            "token_endpoint": "https://evil.example/t", "jwks_uri": "https://evil.example/k",
        });
        idp.answers.borrow_mut().insert(format!("{ISS}/.well-known/openid-configuration"), (200, meta.to_string()));
        let err = Providers::new(&kv, &idp, 1000).metadata(&issuer()).unwrap_err();
        assert!(
            matches!(&err, ApiError::Unavailable { detail } if detail.contains("evil.example") && detail.contains("exactly")),
            "{err:?}"
        );
        assert_eq!(idp.count("/k"), 0, "no key read from where the document points");
    }
}
