//! Tokens whose signature the proxy has already checked, so that each token
//! costs one signature verification (the proxy's largest per-request cost,
//! measured: about a quarter of its CPU under load) rather than one per
//! request.
//!
//! Only what never changes for a token is remembered: that a key of *this*
//! verifier signed it, for this cluster, with its claims. What changes is
//! checked on every request by the caller: expiry against the current time,
//! the revocation epoch and the live grants of the current access view. A
//! new JWKS is a new verifier, and an entry of another verifier is never
//! used, so a key removed from the JWKS stops admitting at once. Refusals are
//! not remembered. Entries are keyed by a SHA-256 of the token; the table is
//! emptied when it is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::ids::ClusterId;
use crate::token::{TokenError, VerifiedToken, Verifier};

/// How many tokens are remembered before the table is emptied.
pub const CAPACITY: usize = 16_384;

/// A token verified, and by which verifier.
type Entry = (Arc<Verifier>, VerifiedToken);

/// The remembered verifications.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl VerifiedTokens {
    /// `token` verified by `verifier` for `cluster_id`, as of `now`, with no
    /// epoch check (the caller checks `claims.rev` against its view's): from
    /// the table if this verifier checked it before, else checked now.
    pub fn verify(
        &self,
        verifier: &Arc<Verifier>,
        token: &str,
        cluster_id: &ClusterId,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let remembered = {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.get(&key).filter(|(by, _)| Arc::ptr_eq(by, verifier)).map(|(_, v)| v.clone())
        };
        if let Some(verified) = remembered {
            if now > verified.expires_at {
                return Err(TokenError::Expired);
            }
            return Ok(verified);
        }
        let verified = verifier.verify(token, cluster_id, i64::MIN, now)?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (verifier.clone(), verified.clone()));
        Ok(verified)
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MemberId;
    use crate::token::{SigningKeys, TokenClaims};

    const NOW: u64 = 1_800_000_000;

    fn new_keys() -> SigningKeys {
        let jwk = crate::dev::new_key(&crate::random::SystemRandom).unwrap().to_jwk();
        SigningKeys::parse(&format!("[{jwk}]")).unwrap()
    }

    #[test]
    fn a_token_is_verified_once_per_verifier_and_expiry_still_applies() {
        let keys = new_keys();
        let cluster = ClusterId::derive(&["prod"]);
        let claims = TokenClaims { rev: 1, user: "lanyard:dev@ex.io".into(), email: "dev@ex.io".into() };
        let (token, exp) = keys.mint(&MemberId::derive(&["dev"]), &cluster, claims, 600, NOW).unwrap();
        let verifier = Arc::new(Verifier::from_jwks(&keys.jwks()));
        let tokens = VerifiedTokens::default();
        assert!(tokens.verify(&verifier, &token, &cluster, NOW).is_ok());
        assert_eq!(tokens.len(), 1);
        assert!(tokens.verify(&verifier, &token, &cluster, NOW + 1).is_ok(), "remembered");
        assert_eq!(tokens.verify(&verifier, &token, &cluster, exp + 1), Err(TokenError::Expired));
        // Another verifier (a new JWKS without the key) does not use the entry.
        let rotated = Arc::new(Verifier::from_jwks(&new_keys().jwks()));
        assert_eq!(tokens.verify(&rotated, &token, &cluster, NOW + 1), Err(TokenError::Invalid));
        // Refusals are not remembered; another cluster is refused.
        let other = ClusterId::derive(&["staging"]);
        assert_eq!(tokens.verify(&verifier, "garbage", &cluster, NOW), Err(TokenError::Invalid));
        let elsewhere = keys
            .mint(
                &MemberId::derive(&["dev"]),
                &other,
                TokenClaims { rev: 1, user: "u".into(), email: "e".into() },
                600,
                NOW,
            )
            .unwrap()
            .0;
        assert_eq!(tokens.verify(&verifier, &elsewhere, &cluster, NOW), Err(TokenError::WrongCluster));
        assert_eq!(tokens.len(), 1);
    }
}
