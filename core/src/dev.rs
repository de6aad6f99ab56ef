//! The development issuer: what the local run and the tests use in place of a
//! real SSO provider. It signs session tokens with an Ed25519 key that the
//! local run keeps in its state folder; a deployment trusts it only if its
//! `session_issuers` names it and `development_mode` is on, and then only for
//! the organisations its entry is bound to.

use jwt_simple::prelude::*;
use serde_json::{Value, json};

use crate::config::{DEFAULT_ADMIN_VALUE, DEFAULT_ORG_CLAIM, DEFAULT_ROLE_CLAIM};
use crate::model::Email;
use crate::random::{NoRandomness, Random};

/// The development issuer's `iss`.
pub const DEV_ISSUER: &str = "https://dev-issuer.lanyard.localhost";
/// The audience Lanyard's sessions carry by default.
pub const AUDIENCE: &str = "lanyard";

/// What a session token says about its holder.
#[derive(Debug, Clone)]
pub struct SessionClaims {
    /// The `email` claim (marked verified).
    pub email: String,
    /// The `org` claim.
    pub org: String,
    /// Whether `org_role` is `admin` (else `member`).
    pub admin: bool,
    /// The `name` claim, if any.
    pub name: Option<String>,
    /// Seconds from `now` until expiry.
    pub ttl_secs: u64,
}

/// Sign a session token as `issuer` would.
pub fn mint_session(key: &Ed25519KeyPair, issuer: &str, audience: &str, c: &SessionClaims, now: u64) -> String {
    let mut custom = serde_json::Map::new();
    custom.insert("email".into(), c.email.clone().into());
    custom.insert("email_verified".into(), true.into());
    custom.insert(DEFAULT_ORG_CLAIM.into(), c.org.clone().into());
    custom.insert(DEFAULT_ROLE_CLAIM.into(), if c.admin { DEFAULT_ADMIN_VALUE } else { "member" }.into());
    if let Some(name) = &c.name {
        custom.insert("name".into(), name.clone().into());
    }
    let mut claims = jwt_simple::claims::Claims::with_custom_claims(custom, Duration::from_secs(c.ttl_secs))
        .with_issuer(issuer)
        .with_audience(audience)
        .with_subject(format!("dev|{}", Email::parse(&c.email).map_or_else(|| c.email.clone(), |e| e.to_string())));
    claims.issued_at = Some(UnixTimeStamp::from_secs(now));
    claims.invalid_before = Some(UnixTimeStamp::from_secs(now));
    claims.expires_at = Some(UnixTimeStamp::from_secs(now + c.ttl_secs));
    // Signing with an in-memory Ed25519 key cannot fail.
    key.sign(claims).unwrap_or_default()
}

/// A fresh signing key from `random`, with its thumbprint as key id.
pub fn new_key(random: &dyn Random) -> Result<Ed25519KeyPair, NoRandomness> {
    let mut seed = [0u8; ed25519_compact::Seed::BYTES];
    random.fill(&mut seed)?;
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    let key = Ed25519KeyPair::from_bytes(&pair[..]).map_err(|e| NoRandomness(format!("building the key: {e}")))?;
    let kid = key.jwk_thumbprint();
    Ok(key.with_key_id(&kid))
}

/// The `session_issuers` entry that trusts `key` as `issuer` for the
/// organisations `orgs` (an allow-list: the session's `org` claim picks one).
pub fn issuer_entry(key: &Ed25519KeyPair, issuer: &str, audience: &str, orgs: &[&str]) -> Value {
    let jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap_or(Value::Null);
    json!({ "issuer": issuer, "audience": audience, "orgs": orgs, "jwks": { "keys": [jwk] } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IssuerConfig;
    use crate::identity::verify_session;
    use crate::model::OrgRole;

    #[test]
    fn minted_sessions_verify_against_the_issuer_entry() {
        let key = new_key(&crate::random::SystemRandom).unwrap();
        let entry: IssuerConfig = serde_json::from_value(issuer_entry(&key, DEV_ISSUER, AUDIENCE, &["demo"])).unwrap();
        let claims =
            SessionClaims { email: "Dev@Ex.io".into(), org: "demo".into(), admin: true, name: None, ttl_secs: 60 };
        let now = 1_800_000_000;
        let token = mint_session(&key, DEV_ISSUER, AUDIENCE, &claims, now);
        let id = verify_session(
            &token,
            std::slice::from_ref(&entry),
            &crate::oidc::StaticKeys,
            &crate::identity::NoCache,
            now + 30,
        )
        .unwrap();
        assert_eq!((id.email.as_str(), id.org.as_str(), id.role), ("dev@ex.io", "demo", OrgRole::Admin));
        assert!(
            verify_session(
                &token,
                std::slice::from_ref(&entry),
                &crate::oidc::StaticKeys,
                &crate::identity::NoCache,
                now + 60 + 120
            )
            .is_err(),
            "expires"
        );
        let elsewhere = SessionClaims { org: "acme".into(), ..claims };
        let token = mint_session(&key, DEV_ISSUER, AUDIENCE, &elsewhere, now);
        assert!(
            verify_session(&token, &[entry], &crate::oidc::StaticKeys, &crate::identity::NoCache, now).is_err(),
            "only for the organisations it is bound to"
        );
    }
}
