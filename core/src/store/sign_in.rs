//! Browser sign-ins in progress: what `/auth/login` must remember until the
//! provider sends the browser back to `/auth/callback`.
//!
//! A sign-in is kept under the digest of its `state` (the state itself is
//! only in the browser's URL), taken at most once (an `increment` decides
//! which callback wins, so a replayed or raced callback gets nothing), and is
//! good for [`SIGN_IN_SECONDS`]. Spin's store has no expiry, so each sign-in
//! is also logged under the minute it began, and every `begin` sweeps a few
//! minutes that are past the limit: abandoned sign-ins do not pile up.

use serde::{Deserialize, Serialize};

use super::expiring::Expiring;
use super::{Store, StoreError, from_json, keys, to_json};

/// How long a sign-in may take, from `/auth/login` to `/auth/callback`.
pub const SIGN_IN_SECONDS: u64 = 600;
/// Sign-ins expire: logged by the minute they began, swept five minutes at a time.
const SIGN_INS: Expiring = Expiring {
    log: keys::sign_ins_begun,
    swept: keys::sign_ins_swept,
    period: 60,
    life: SIGN_IN_SECONDS,
    sweep_max: 5,
    keys_of: |digest| vec![keys::sign_in(digest), keys::sign_in_used(digest)],
};

/// A sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The issuer it signs in with.
    pub issuer: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The redirect URI sent to the provider (the code exchange repeats it).
    pub redirect_uri: String,
    /// Where the browser goes once signed in (a path on this site).
    pub return_to: Option<String>,
    /// Digest of the browser's sign-in cookie: the callback must come from
    /// the browser that began.
    pub browser: String,
    /// Unix seconds when it began.
    pub began_at: u64,
}

impl Store<'_> {
    /// Remember a sign-in under its `state`, and sweep abandoned ones.
    pub fn begin_sign_in(&self, state: &str, pending: &PendingSignIn) -> Result<(), StoreError> {
        let digest = state_digest(state);
        self.log_expiring(&SIGN_INS, &digest, pending.began_at)?;
        self.kv.set(&keys::sign_in(&digest), &to_json(pending)?)?;
        self.sweep_expiring(&SIGN_INS, pending.began_at);
        Ok(())
    }

    /// Take the sign-in of `state`: `None` when there is none, it was taken
    /// already, or it is older than [`SIGN_IN_SECONDS`].
    pub fn take_sign_in(&self, state: &str, now: u64) -> Result<Option<PendingSignIn>, StoreError> {
        let digest = state_digest(state);
        let key = keys::sign_in(&digest);
        let Some(bytes) = self.kv.get(&key)? else { return Ok(None) };
        let pending: PendingSignIn = from_json(&key, &bytes)?;
        if self.kv.increment(&keys::sign_in_used(&digest), 1)? != 1 {
            return Ok(None);
        }
        self.kv.delete(&key)?;
        Ok((now.saturating_sub(pending.began_at) <= SIGN_IN_SECONDS).then_some(pending))
    }
}

/// The key-safe digest that stands for a `state`.
fn state_digest(state: &str) -> String {
    crate::ids::digest_hex(&["sign-in-state", state])[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::kv::MemoryKv;

    fn pending(at: u64) -> PendingSignIn {
        PendingSignIn {
            issuer: "https://idp".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            redirect_uri: "http://127.0.0.1/auth/callback".into(),
            return_to: None,
            browser: "b".into(),
            began_at: at,
        }
    }

    #[test]
    fn a_sign_in_is_taken_once_and_only_while_young() {
        let kv = MemoryKv::new();
        let store = Store::new(&kv, &SystemClock);
        store.begin_sign_in("s1", &pending(10_000)).unwrap();
        assert_eq!(store.take_sign_in("s1", 10_010).unwrap(), Some(pending(10_000)));
        assert_eq!(store.take_sign_in("s1", 10_011).unwrap(), None, "replayed");
        assert_eq!(store.take_sign_in("never", 10_011).unwrap(), None);
        store.begin_sign_in("s2", &pending(10_000)).unwrap();
        assert_eq!(store.take_sign_in("s2", 10_000 + SIGN_IN_SECONDS + 1).unwrap(), None, "expired");
    }

    #[test]
    fn abandoned_sign_ins_are_swept() {
        let kv = MemoryKv::new();
        let store = Store::new(&kv, &SystemClock);
        for i in 0..20 {
            store.begin_sign_in(&format!("old-{i}"), &pending(60_000 + i)).unwrap();
        }
        let before = kv.len();
        // Much later, sign-ins go on: the old minute is swept, nothing of it stays.
        for i in 0..3 {
            store.begin_sign_in(&format!("new-{i}"), &pending(60_000 + SIGN_IN_SECONDS + 180 + i)).unwrap();
        }
        let old_left = kv.snapshot().iter().filter(|(k, _)| k.contains("/minute/1000/")).count();
        assert_eq!(old_left, 0, "the old minute's log is gone");
        assert!(kv.len() < before, "{} keys before, {} after", before, kv.len());
        assert_eq!(store.take_sign_in("old-3", 60_000 + 3).unwrap(), None, "its records are gone too");
    }
}
