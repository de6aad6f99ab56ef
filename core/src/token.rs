//! Short-lived cluster tokens: EdDSA (Ed25519) JWTs minted for one member on
//! one cluster, and their verification (the access proxy's check).
//!
//! The deployment's signing keys are the secret variable `token_signing_keys`:
//! a JSON array of Ed25519 private JWKs, each with a `kid`. The first signs;
//! all are published at `/.well-known/jwks.json`, so during a rotation a
//! token signed by the previous key stays valid until it expires, and one
//! signed by a key that was removed does not verify.
//!
//! Claims: `iss` [`ISSUER`], `sub` the member id, `aud` the cluster id, `iat`,
//! `exp`, and `rev`, the cluster's revocation epoch when minted: a token whose
//! `rev` is older than the cluster's current epoch was revoked by revoke-all.

use jwt_simple::prelude::*;
use serde_json::Value;

use crate::error::ApiError;
use crate::ids::{ClusterId, MemberId};
use crate::jws;

/// The `iss` of every cluster token.
pub const ISSUER: &str = "lanyard";
/// Default token lifetime.
pub const DEFAULT_LIFETIME_SECS: u64 = 15 * 60;
/// Longest lifetime a deployment may configure.
pub const MAX_LIFETIME_SECS: u64 = 60 * 60;
/// Shortest lifetime a deployment may configure.
pub const MIN_LIFETIME_SECS: u64 = 60;

/// What a cluster token says beyond the registered claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The cluster's revocation epoch when the token was minted.
    pub rev: i64,
    /// The Kubernetes user the proxy impersonates.
    pub user: String,
    /// The member's email (for the proxy's audit log).
    pub email: String,
}

/// A verified cluster token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The member it was minted for (`sub`).
    pub member_id: MemberId,
    /// The cluster it is for (`aud`).
    pub cluster_id: ClusterId,
    /// Unix seconds of `exp`.
    pub expires_at: u64,
    /// The Lanyard claims.
    pub claims: TokenClaims,
}

/// The deployment's signing keys, newest (signing) first.
pub struct SigningKeys {
    keys: Vec<Ed25519KeyPair>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("the token is expired")]
    Expired,
    /// Its `aud` is another cluster.
    #[error("the token is for another cluster")]
    WrongCluster,
    /// Minted before the cluster's last revoke-all.
    #[error("the token was revoked")]
    Revoked,
    /// Not a token this deployment signed (or malformed).
    #[error("the token is not validly signed by this deployment")]
    Invalid,
}

impl SigningKeys {
    /// Parse `token_signing_keys`. Errors name the problem, never a key.
    pub fn parse(raw: &str) -> Result<SigningKeys, String> {
        let list: Vec<Value> = serde_json::from_str(raw).map_err(|_| "is not a JSON array of JWKs".to_owned())?;
        if list.is_empty() {
            return Err("holds no key".into());
        }
        let mut keys = Vec::with_capacity(list.len());
        for (i, jwk) in list.iter().enumerate() {
            let kid = jwk.get("kid").and_then(Value::as_str).filter(|k| !k.is_empty());
            let Some(kid) = kid.map(str::to_owned) else { return Err(format!("key {i} has no kid")) };
            let key = Ed25519KeyPair::from_jwk(&jwk.to_string())
                .map_err(|_| format!("key {i} is not an Ed25519 private JWK"))?;
            keys.push(key.with_key_id(&kid));
        }
        Ok(SigningKeys { keys })
    }

    /// Whether `jwks` publishes the signing key's public key under its `kid`:
    /// a token signed by an unpublished key would not verify anywhere.
    pub fn published_in(&self, jwks: &Value) -> bool {
        let signing = &self.keys[0];
        let public: Value = serde_json::from_str(&signing.public_key().to_jwk()).unwrap_or(Value::Null);
        jwks.get("keys").and_then(Value::as_array).is_some_and(|keys| {
            keys.iter()
                .any(|k| k.get("kid") == public.get("kid") && k.get("x") == public.get("x") && k.get("x").is_some())
        })
    }

    /// The JWKS document: every public key (what `token_jwks` must hold).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> =
            self.keys.iter().filter_map(|k| serde_json::from_str(&k.public_key().to_jwk()).ok()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// Mint a token; returns it and its expiry (unix seconds).
    pub fn mint(
        &self,
        member_id: &MemberId,
        cluster_id: &ClusterId,
        claims: TokenClaims,
        lifetime_secs: u64,
        now: u64,
    ) -> Result<(String, u64), ApiError> {
        let expires_at = now + lifetime_secs;
        let mut c = jwt_simple::claims::Claims::with_custom_claims(claims, Duration::from_secs(lifetime_secs))
            .with_issuer(ISSUER)
            .with_subject(member_id.as_str())
            .with_audience(cluster_id.as_str());
        c.issued_at = Some(UnixTimeStamp::from_secs(now));
        c.invalid_before = Some(UnixTimeStamp::from_secs(now));
        c.expires_at = Some(UnixTimeStamp::from_secs(expires_at));
        let token = self.keys[0].sign(c).map_err(|e| ApiError::unavailable(format!("signing a cluster token: {e}")))?;
        Ok((token, expires_at))
    }
}

/// Parse `token_jwks`, the public keys that verify cluster tokens, as the
/// `jwks` endpoint publishes them: a JWKS document of Ed25519 public keys,
/// each with a `kid`. A private key here is refused, so that the public
/// endpoint can never publish one. Errors name the problem, never a key.
pub fn parse_public_jwks(raw: &str) -> Result<Value, String> {
    let doc: Value = serde_json::from_str(raw).map_err(|_| "is not a JWKS document ({\"keys\": [...]})".to_owned())?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "is not a JWKS document ({\"keys\": [...]})".to_owned())?;
    if keys.is_empty() {
        return Err("holds no key".into());
    }
    let mut public = Vec::with_capacity(keys.len());
    for (i, jwk) in keys.iter().enumerate() {
        if jwk.get("d").is_some() {
            return Err(format!(
                "key {i} is a private key: publish only public keys (lanyard dev signing-keys --public)"
            ));
        }
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| format!("key {i} has no kid"))?;
        let key = Ed25519PublicKey::from_jwk(&jwk.to_string())
            .map_err(|_| format!("key {i} is not an Ed25519 public JWK"))?;
        let mut out: Value =
            serde_json::from_str(&key.to_jwk()).map_err(|_| format!("key {i} is not an Ed25519 public JWK"))?;
        out["kid"] = kid.into();
        public.push(out);
    }
    Ok(serde_json::json!({ "keys": public }))
}

/// The public keys that verify cluster tokens, parsed once (the access
/// proxy builds one per JWKS refresh, not per request). Keys are found by
/// `kid`; a key of another type than Ed25519, or without a `kid`, is skipped.
pub struct Verifier {
    keys: Vec<(String, Ed25519PublicKey)>,
}

impl Verifier {
    /// The verifier of a JWKS document (what `/.well-known/jwks.json` serves).
    pub fn from_jwks(jwks: &Value) -> Verifier {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|jwk| {
                        let kid = jwk.get("kid").and_then(Value::as_str).filter(|k| !k.is_empty())?;
                        let key = Ed25519PublicKey::from_jwk(&jwk.to_string()).ok()?;
                        Some((kid.to_owned(), key))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Verifier { keys }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key (and so refuses every token).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verify a cluster token for `cluster_id` at `now`, with the cluster's
    /// current revocation epoch: signed by one of the keys (EdDSA only; no
    /// `alg: none`, no other algorithm), issued by Lanyard, unexpired (no
    /// skew), for this cluster, minted at or after the epoch.
    pub fn verify(
        &self,
        token: &str,
        cluster_id: &ClusterId,
        current_epoch: i64,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let compact = jws::check_compact(token, jws::Profile::ClusterToken).map_err(|_| TokenError::Invalid)?;
        // Lanyard mints one audience, as a string: a list naming this
        // cluster among others is not a token it wrote.
        let Some(Value::String(audience)) = compact.payload.get("aud") else { return Err(TokenError::Invalid) };
        if compact.header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
            return Err(TokenError::Invalid);
        }
        let kid = compact.header.get("kid").and_then(Value::as_str).ok_or(TokenError::Invalid)?;
        let (_, key) = self.keys.iter().find(|(k, _)| k == kid).ok_or(TokenError::Invalid)?;
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
            time_tolerance: Some(Duration::from_secs(0)),
            artificial_time: Some(UnixTimeStamp::from_secs(now)),
            max_token_length: Some(MAX_TOKEN_BYTES),
            ..Default::default()
        };
        let claims = key.verify_token::<TokenClaims>(token, Some(options)).map_err(|e| {
            match e.downcast_ref::<jwt_simple::JWTError>() {
                Some(jwt_simple::JWTError::TokenHasExpired) => TokenError::Expired,
                _ => TokenError::Invalid,
            }
        })?;
        if audience != cluster_id.as_str() {
            return Err(TokenError::WrongCluster);
        }
        match claims.expires_at {
            None => return Err(TokenError::Invalid),
            Some(exp) if jws::is_expired(exp.as_secs(), now, 0) => return Err(TokenError::Expired),
            Some(_) => {}
        }
        if claims.custom.rev < current_epoch {
            return Err(TokenError::Revoked);
        }
        Ok(VerifiedToken {
            member_id: claims.subject.as_deref().and_then(MemberId::parse).ok_or(TokenError::Invalid)?,
            cluster_id: cluster_id.clone(),
            expires_at: claims.expires_at.map_or(0, |e| e.as_secs()),
            claims: claims.custom,
        })
    }
}

/// The longest cluster token considered at all.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Verify a cluster token for `cluster_id` against a JWKS document, at `now`,
/// with the cluster's current revocation epoch ([`Verifier::verify`]; for a
/// caller that verifies once, such as a test).
pub fn verify(
    token: &str,
    jwks: &Value,
    cluster_id: &ClusterId,
    current_epoch: i64,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    Verifier::from_jwks(jwks).verify(token, cluster_id, current_epoch, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> MemberId {
        MemberId::derive(&["m_1"])
    }

    fn cluster() -> ClusterId {
        ClusterId::derive(&["c_1"])
    }

    const NOW: u64 = 1_800_000_000;

    fn keys(n: usize) -> (SigningKeys, Vec<String>) {
        let jwks: Vec<String> =
            (0..n).map(|_| crate::dev::new_key(&crate::random::SystemRandom).unwrap().to_jwk()).collect();
        let raw = format!("[{}]", jwks.join(","));
        (SigningKeys::parse(&raw).unwrap(), jwks)
    }

    fn claims() -> TokenClaims {
        TokenClaims { rev: 2, user: "lanyard:dev@ex.io".into(), email: "dev@ex.io".into() }
    }

    #[test]
    fn a_minted_token_carries_the_promised_claims() {
        let (k, _) = keys(1);
        let (token, exp) = k.mint(&member(), &cluster(), claims(), 900, NOW).unwrap();
        assert_eq!(exp, NOW + 900);
        let meta = Token::decode_metadata(&token).unwrap();
        assert_eq!(meta.algorithm(), "EdDSA");
        assert!(meta.key_id().is_some());
        let v = verify(&token, &k.jwks(), &cluster(), 2, NOW + 10).unwrap();
        assert_eq!((&v.member_id, &v.cluster_id, v.expires_at), (&member(), &cluster(), NOW + 900));
        assert_eq!(v.claims, claims());
        // The payload has iss, sub, aud, iat, exp, rev.
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let json: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        for claim in ["iss", "sub", "aud", "iat", "exp", "rev"] {
            assert!(json.get(claim).is_some(), "{claim} missing from {json}");
        }
        assert!(k.jwks()["keys"][0].get("d").is_none(), "the JWKS holds no private part");
    }

    #[test]
    fn expired_tampered_foreign_and_revoked_tokens_fail() {
        let (k, _) = keys(1);
        let (token, _) = k.mint(&member(), &cluster(), claims(), 900, NOW).unwrap();
        assert_eq!(verify(&token, &k.jwks(), &cluster(), 2, NOW + 901), Err(TokenError::Expired));
        assert_eq!(verify(&token, &k.jwks(), &ClusterId::derive(&["c_2"]), 2, NOW), Err(TokenError::WrongCluster));
        assert_eq!(verify(&token, &k.jwks(), &cluster(), 3, NOW), Err(TokenError::Revoked));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        assert_eq!(verify(&parts.join("."), &k.jwks(), &cluster(), 2, NOW), Err(TokenError::Invalid));
        let (other, _) = keys(1);
        assert_eq!(verify(&token, &other.jwks(), &cluster(), 2, NOW), Err(TokenError::Invalid));
        assert_eq!(verify("garbage", &k.jwks(), &cluster(), 2, NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn only_eddsa_tokens_signed_by_a_published_key_verify() {
        use base64::Engine as _;
        let (k, _) = keys(1);
        let verifier = Verifier::from_jwks(&k.jwks());
        assert_eq!(verifier.len(), 1, "keys are parsed once, into the verifier");
        let (token, _) = k.mint(&member(), &cluster(), claims(), 900, NOW).unwrap();
        assert!(verifier.verify(&token, &cluster(), 2, NOW).is_ok());
        let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let kid = Token::decode_metadata(&token).unwrap().key_id().unwrap().to_owned();
        let payload = token.split('.').nth(1).unwrap().to_owned();
        for alg in ["none", "HS256", "ES256", "RS256"] {
            let header = b64(serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid}));
            let forged = format!("{header}.{payload}.");
            assert_eq!(verifier.verify(&forged, &cluster(), 2, NOW), Err(TokenError::Invalid), "alg {alg}");
            let signed = format!("{header}.{payload}.{}", token.split('.').nth(2).unwrap());
            assert_eq!(verifier.verify(&signed, &cluster(), 2, NOW), Err(TokenError::Invalid), "alg {alg}");
        }
        let unknown_kid = b64(serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "someone-else"}));
        let forged = format!("{unknown_kid}.{payload}.{}", token.split('.').nth(2).unwrap());
        assert_eq!(verifier.verify(&forged, &cluster(), 2, NOW), Err(TokenError::Invalid));
        assert_eq!(verifier.verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &cluster(), 2, NOW), Err(TokenError::Invalid));
        assert!(
            Verifier::from_jwks(&serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": kid}]})).is_empty()
        );
        assert!(Verifier::from_jwks(&serde_json::json!("garbage")).is_empty());
        // Signed by the deployment's own key, but with no `exp`: never accepted.
        let mut forever = jwt_simple::claims::Claims::with_custom_claims(claims(), Duration::from_secs(900))
            .with_issuer(ISSUER)
            .with_subject(member().as_str())
            .with_audience(cluster().as_str());
        forever.expires_at = None;
        let no_exp = k.keys[0].sign(forever).unwrap();
        assert_eq!(verifier.verify(&no_exp, &cluster(), 2, NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn rotation_keeps_old_tokens_until_their_key_is_removed() {
        let (old, old_jwks) = keys(1);
        let (token, _) = old.mint(&member(), &cluster(), claims(), 900, NOW).unwrap();
        let new_jwk = crate::dev::new_key(&crate::random::SystemRandom).unwrap().to_jwk();
        let rotated = SigningKeys::parse(&format!("[{new_jwk},{}]", old_jwks[0])).unwrap();
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(verify(&token, &rotated.jwks(), &cluster(), 2, NOW).is_ok(), "still valid during the rotation");
        let (fresh, _) = rotated.mint(&member(), &cluster(), claims(), 900, NOW).unwrap();
        assert_ne!(Token::decode_metadata(&fresh).unwrap().key_id(), Token::decode_metadata(&token).unwrap().key_id());
        let after = SigningKeys::parse(&format!("[{new_jwk}]")).unwrap();
        assert_eq!(verify(&token, &after.jwks(), &cluster(), 2, NOW), Err(TokenError::Invalid), "removed key");
        assert!(verify(&fresh, &after.jwks(), &cluster(), 2, NOW).is_ok());
    }

    #[test]
    fn the_public_jwks_holds_only_public_keys_and_must_publish_the_signer() {
        let (k, private) = keys(2);
        let published = parse_public_jwks(&k.jwks().to_string()).unwrap();
        assert_eq!(published, k.jwks(), "what the endpoint serves is what was configured");
        assert!(k.published_in(&published));
        let (other, _) = keys(1);
        assert!(!other.published_in(&published), "a signer whose key is not published");
        let leaked = format!(r#"{{"keys":[{}]}}"#, private[0]);
        let err = parse_public_jwks(&leaked).unwrap_err();
        assert!(err.contains("private") && !err.contains(&private[0]), "{err}");
        for (raw, want) in [("[]", "JWKS"), (r#"{"keys":[]}"#, "no key"), (r#"{"keys":[{"kty":"OKP"}]}"#, "kid")] {
            assert!(parse_public_jwks(raw).unwrap_err().contains(want), "{raw}");
        }
    }

    #[test]
    fn bad_key_configuration_is_named_not_echoed() {
        for (raw, want) in [
            ("nope", "JSON"),
            ("[]", "no key"),
            (r#"[{"kty":"OKP"}]"#, "kid"),
            (r#"[{"kid":"a","kty":"OKP","crv":"Ed25519","x":"AAAA"}]"#, "private"),
        ] {
            let err = SigningKeys::parse(raw).err().unwrap();
            assert!(err.contains(want), "{raw}: {err}");
        }
    }

    /// Lanyard claims with `rev` written twice, the second time larger.
    struct RevTwice;

    impl serde::Serialize for RevTwice {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("rev", &1)?;
            map.serialize_entry("user", "lanyard:dev@ex.io")?;
            map.serialize_entry("email", "dev@ex.io")?;
            map.serialize_entry("rev", &99)?;
            map.end()
        }
    }

    /// Tokens signed by the deployment's own key that it would never have
    /// minted: each is refused, whatever jwt-simple alone would accept.
    #[test]
    fn signed_tokens_of_a_shape_lanyard_never_mints_are_refused() {
        let (k, _) = keys(1);
        let verifier = Verifier::from_jwks(&k.jwks());
        let sign = |f: &dyn Fn(JWTClaims<TokenClaims>) -> JWTClaims<TokenClaims>| {
            let c = jwt_simple::claims::Claims::with_custom_claims(claims(), Duration::from_secs(900))
                .with_issuer(ISSUER)
                .with_subject(member().as_str())
                .with_audience(cluster().as_str());
            k.keys[0].sign(f(c)).unwrap()
        };
        let two_audiences = sign(&|c| {
            c.with_audiences(HashSet::from_strings(&[cluster().as_str(), ClusterId::derive(&["c_2"]).as_str()]))
        });
        assert_eq!(verifier.verify(&two_audiences, &cluster(), 2, NOW), Err(TokenError::Invalid), "two audiences");
        let dup = jwt_simple::claims::Claims::with_custom_claims(RevTwice, Duration::from_secs(900))
            .with_issuer(ISSUER)
            .with_subject(member().as_str())
            .with_audience(cluster().as_str());
        let dup = k.keys[0].sign(dup).unwrap();
        assert_eq!(verifier.verify(&dup, &cluster(), 50, NOW), Err(TokenError::Invalid), "rev named twice");
        let (token, exp) = k.mint(&member(), &cluster(), claims(), 900, NOW).unwrap();
        assert!(verifier.verify(&token, &cluster(), 2, exp - 1).is_ok());
        assert_eq!(verifier.verify(&token, &cluster(), 2, exp), Err(TokenError::Expired), "at exp, not after it");
    }

    /// The classic JWT attacks on a cluster token, as the access proxy's
    /// verifier sees them: each one is `Invalid`, none reaches a member.
    #[test]
    fn forged_cluster_tokens_are_invalid() {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use serde_json::json;
        let (k, _) = keys(1);
        let jwks = k.jwks();
        let (token, _) = k.mint(&member(), &cluster(), claims(), 900, NOW).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let kid = Token::decode_metadata(&token).unwrap().key_id().unwrap().to_owned();
        let payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        let header = |h: Value| B64.encode(h.to_string());
        let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
        let hs256 = {
            use jwt_simple::prelude::MACLike as _;
            let key = HS256Key::from_bytes(x.as_bytes()).with_key_id(&kid);
            let claims: JWTClaims<Value> = serde_json::from_value(payload.clone()).unwrap();
            key.authenticate(claims).unwrap()
        };
        let attacker = crate::dev::new_key(&crate::random::SystemRandom).unwrap().with_key_id(&kid);
        let forged = attacker.sign(serde_json::from_value::<JWTClaims<Value>>(payload.clone()).unwrap()).unwrap();
        let mut escalated = payload.clone();
        escalated["rev"] = json!(99);
        let attacks: Vec<(&str, String)> = vec![
            ("alg none", format!("{}.{}.", header(json!({"alg": "none", "kid": kid})), parts[1])),
            ("HS256 keyed with the public key", hs256),
            ("another key claiming the kid", forged.clone()),
            (
                "the attacker's key offered in jwk and jku headers",
                format!(
                    "{}.{}.{}",
                    header(json!({"alg": "EdDSA", "kid": kid, "jwk": {"kty": "OKP"}, "jku": "https://evil.example"})),
                    parts[1],
                    forged.rsplit('.').next().unwrap()
                ),
            ),
            ("a later rev after signing", format!("{}.{}.{}", parts[0], B64.encode(escalated.to_string()), parts[2])),
            ("an unknown kid", format!("{}.{}.{}", header(json!({"alg": "EdDSA", "kid": "nope"})), parts[1], parts[2])),
            ("oversized", format!("{}.{}.{}", parts[0], "A".repeat(MAX_TOKEN_BYTES), parts[2])),
            ("not base64", format!("{}.%%%.{}", parts[0], parts[2])),
            ("padded base64", format!("{}.{}=.{}", parts[0], parts[1], parts[2])),
            (
                "an x5t header Lanyard never writes",
                format!(
                    "{}.{}.{}",
                    header(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid, "x5t": "a"})),
                    parts[1],
                    parts[2]
                ),
            ),
        ];
        for (what, attack) in attacks {
            assert_eq!(verify(&attack, &jwks, &cluster(), 2, NOW), Err(TokenError::Invalid), "{what}");
        }
        assert!(verify(&token, &jwks, &cluster(), 2, NOW).is_ok(), "the real one still verifies");
    }
}
