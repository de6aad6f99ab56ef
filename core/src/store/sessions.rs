//! The verified-session cache: a session token verified moments ago is
//! recalled instead of verified again (why this is safe:
//! [`crate::identity::VerifiedSessions`]). An entry lives for
//! [`VERIFIED_SECONDS`]; entries are logged by the period they were written
//! in and swept by later writers, since Spin's store has no expiry.

use serde::{Deserialize, Serialize};

use super::expiring::Expiring;
use super::{Store, keys, to_json};
use crate::identity::{Identity, VerifiedSessions};

/// How long a verification is remembered.
pub const VERIFIED_SECONDS: u64 = 300;

const SESSIONS: Expiring = Expiring {
    log: keys::sessions_verified,
    swept: keys::sessions_swept,
    period: 60,
    life: VERIFIED_SECONDS,
    sweep_max: 5,
    keys_of: |key| vec![keys::verified_session(key)],
};

/// What is remembered of one verification.
#[derive(Serialize, Deserialize)]
struct Verified {
    identity: Identity,
    verified_at: u64,
}

impl VerifiedSessions for Store<'_> {
    fn recall(&self, key: &str, now: u64) -> Option<Identity> {
        let verified: Verified = self.get_json(&keys::verified_session(key)).ok().flatten()?;
        let fresh = verified.verified_at <= now && now < verified.verified_at + VERIFIED_SECONDS;
        fresh.then_some(verified.identity)
    }

    fn remember(&self, key: &str, identity: &Identity, now: u64) {
        let Ok(bytes) = to_json(&Verified { identity: identity.clone(), verified_at: now }) else { return };
        if self.log_expiring(&SESSIONS, key, now).is_ok() {
            let _ = self.kv.set(&keys::verified_session(key), &bytes);
        }
        self.sweep_expiring(&SESSIONS, now);
    }
}
