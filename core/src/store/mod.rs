//! Lanyard's state in a key-value store that has no transactions, no prefix
//! listing and no trustworthy compare-and-swap (Spin's). Everything is built
//! from three things that are safe under concurrency on every Spin backend:
//!
//! * **write-once keys** whose name is unique to the writer (a fresh sequence
//!   number, or a deterministic id that every writer of the same thing agrees
//!   on), so no two writers ever race on one value;
//! * **`increment`**, the one atomic read-modify-write, for sequences and for
//!   *claims* (the writer whose increment returns 1 owns the claim);
//! * **append-only logs** (`…/seq` counter + `…/<n>` slots) instead of listed
//!   prefixes; readers de-duplicate and skip slots whose record is gone.
//!
//! # Key layout (all keys start with `v1/`)
//!
//! | key | value | written by |
//! |---|---|---|
//! | `v1/org/{o}/clusters/seq`, `…/clusters/{n}` | log of cluster ids | registration |
//! | `v1/org/{o}/cluster-name/{name}/gen` | counter: where the first unreleased incarnation of a cluster name is looked for, +1 per deletion | cluster delete |
//! | `v1/org/{o}/cluster-name/{name}` (`i` = 0), `…/{name}/claim/{i}` | claim counter of incarnation `i` | registration |
//! | `v1/org/{o}/cluster-name/{name}/released/{i}` | counter: incarnation `i` released once | cluster delete |
//! | `v1/cluster/{c}` | [`ClusterRecord`] JSON (write-once) | registration |
//! | `v1/cluster/{c}/deleted` | [`ClusterDeletion`] JSON: the tombstone | cluster delete |
//! | `v1/cluster/{c}/credentials/seq`, `…/credentials/{n}` | log of [`CredentialRotation`] JSON (slot 0 is the record's) | rotation |
//! | `v1/cluster/{c}/credentials/{n}/used` | marker: the agent has authenticated with credential `n` | agent |
//! | `v1/cluster/{c}/epoch` | counter: revocation epoch, +1 per revoke-all | revoke-all, cluster delete |
//! | `v1/cluster/{c}/heartbeat` | [`Heartbeat`] JSON | agent |
//! | `v1/cluster/{c}/e/{e}/grants/seq`, `…/grants/{n}` | log of grant ids of epoch `e` | grant create |
//! | `v1/cluster/{c}/e/{e}/member/{m}/grants/seq`, `…/{n}` | log of member `m`'s grant ids of epoch `e` (so a member's own grants are read without the cluster's) | grant create |
//! | `v1/cluster/{c}/e/{e}/member-indexed` | marker: epoch `e`'s member logs are complete (written by its first create, before any slot); an epoch without it began before member logs existed and is read whole | grant create |
//! | `v1/cluster/{c}/e/{e}/gen/{fp}` | counter: where the first unreleased generation of grant fingerprint `fp` is looked for | grant delete |
//! | `v1/cluster/{c}/e/{e}/claim/{fp}/{g}` | claim counter of generation `g` | grant create |
//! | `v1/cluster/{c}/e/{e}/released/{fp}/{g}` | counter: generation `g` released once | grant delete |
//! | `v1/cluster/{c}/grant/{id}` | [`GrantRecord`] JSON (write-once) | grant create |
//! | `v1/cluster/{c}/grant/{id}/observed` | [`Observed`] JSON | agent |
//! | `v1/cluster/{c}/jobs/seq`, `…/jobs/{n}` | log of [`Job`] JSON | every grant change |
//! | `v1/cluster/{c}/jobs/acked` | JSON number: jobs the agent has finished | agent |
//! | `v1/org/{o}/members/seq`, `…/members/{n}` | log of member ids | first sign-in, invite |
//! | `v1/org/{o}/member/{m}` | [`MemberProfile`] JSON | the member's own sign-in |
//! | `v1/org/{o}/member/{m}/invite` | [`Invite`] JSON | admin invite |
//! | `v1/org/{o}/member/{m}/deactivated` | [`Deactivation`] JSON | admin |
//! | `v1/org/{o}/member/{m}/pin/gen` | counter: where the first unreleased generation of the member's pin is looked for, +1 per release | admin release, abandoned pin |
//! | `v1/org/{o}/member/{m}/pin/{g}/claim` | claim counter of pin generation `g` | first sign-in |
//! | `v1/org/{o}/member/{m}/pin/{g}` | [`Pin`] JSON (write-once): the (issuer, subject) of generation `g` | first sign-in |
//! | `v1/org/{o}/member/{m}/pin/{g}/released` | counter: generation `g` released once | admin release, abandoned pin |
//! | `v1/rate/k8s-token/{m}/{minute}` | counter: tokens minted in that minute | token mint |
//! | `v1/idp/{i}/metadata`, `v1/idp/{i}/jwks` | a provider's discovery document and keys, with when they were read ([`crate::oidc`]) | a session or sign-in that needs them |
//! | `v1/idp/{i}/jwks-failed` | JSON number: when reading the keys last failed with no copy (no new read within the interval) | a session that needs them |
//! | `v1/idp/{i}/refetch/{window}` | counter: key-set reads in that window; only the first reads | a token naming an unknown key |
//! | `v1/sign-in/{s}` | a browser sign-in in progress: nonce, PKCE verifier, where to go back (deleted when used) | `/auth/login` |
//! | `v1/sign-in/{s}/used` | counter: its callback was taken once | `/auth/callback` |
//! | `v1/sign-in/minute/{m}/seq`, `…/minute/{m}/{n}` | log of the sign-ins begun in minute `m`, for the sweep of abandoned ones | `/auth/login` |
//! | `v1/sign-in/swept` | JSON number: the last minute swept | `/auth/login` |
//! | `v1/session/{k}` | a session verified moments ago: the identity and when ([`sessions`]) | any session's first request of a few minutes |
//! | `v1/session/period/{p}/seq`, `…/period/{p}/{n}` | log of the sessions verified in period `p`, for the sweep | the same |
//! | `v1/session/swept` | JSON number: the last period swept | the same |
//!
//! `{o}` is a digest of the organisation name; `{fp}` a digest of (member,
//! role, scope, namespace); ids are `c_…`, `g_…`, `m_…` (see [`crate::ids`]).
//! Every key is spelled once, in [`keys`].
//!
//! # Modules
//!
//! [`keys`] (the layout above), [`log`] (append-only logs), [`claim`] (the
//! claim protocol), and the operations by area: [`clusters`] (registration,
//! deletion, agent credentials, heartbeats), [`grants`] (grants, epochs,
//! revoke-all, reports), [`jobs`], [`members`] (directory, pins,
//! deactivation), [`rate`] (the token-mint limit), [`sign_in`] and
//! [`sessions`] (the verified-session cache), the last two expiring entries
//! (`expiring`).
//!
//! # How the grant rules hold without transactions
//!
//! * A grant is *live* iff its record exists and its epoch is the cluster's
//!   current epoch. Revoke-all is one `increment` of the epoch: every grant of
//!   the old epoch is dead at that instant, whatever else is in flight.
//! * Exact duplicates: a grant's id is derived from (cluster, epoch,
//!   fingerprint, generation). Creating claims `claim/{fp}/{g}`; only the
//!   writer whose increment returns 1 creates it, the others answer
//!   `duplicate_grant`. Deleting removes the record, then releases the
//!   generation exactly once (`released/{fp}/{g}` is the once-guard), so the
//!   same grant can be created again, under a new id. The current generation
//!   is the first one not released (`claim::Generations`, as for pins and
//!   cluster names): `gen/{fp}` only says where to start looking, so a delete
//!   that failed before moving it cannot hold the fingerprint back. A create that finds the claim taken
//!   but no record waits briefly (an in-flight create or delete finishes in
//!   milliseconds) and, if nothing changes, completes the abandoned create
//!   itself: every writer computes the same id, so at most one grant results.
//!   A claim owner slowed past that patience may still write the record after
//!   the rival's grant was deleted; so a creator reads the generation again
//!   after writing (moved on: it removes its record), and a deleter removes the
//!   record once more after releasing it; whichever runs last removes it
//!   (`tests/store_interleavings.rs` runs every such schedule).
//! * Order of writes: log slots (the epoch's, then the member's), then
//!   record. A crash leaves at worst a slot whose record is missing, which
//!   readers skip. The record is the commit
//!   point of a create: what comes after it (the agent's wake-up job) is best
//!   effort, since the agent's periodic resync reads the same state, so a
//!   create never answers an error for a grant that exists.
//! * Status lives in its own key, written only by the agent, so a late report
//!   cannot resurrect a deleted grant's record.
//! * Member state is split by writer (the member's own profile, the admin's
//!   invite and deactivation), so concurrent writers never overwrite each other.
//! * A member is pinned to the (issuer, subject) of its first sign-in, with
//!   the grants' claim scheme: the first sign-in of pin generation `g` claims
//!   `pin/{g}/claim` and writes the write-once `pin/{g}`; every other sign-in
//!   reads it and is refused unless it is the same (issuer, subject). A claim
//!   whose pin never appears within [`CLAIM_PATIENCE`] is given up by
//!   releasing the generation (once, by the `released` guard), and so is the
//!   pin when an admin releases it; the next sign-in then pins the new
//!   generation. Only the pinned identity's sign-ins write the profile.
//! * Deactivation writes its marker first (from then on the agent's access
//!   state leaves the member's grants out), then deletes the member's grants;
//!   reactivation deletes any left first, then lifts the marker: a failure
//!   at any step leaves the member without access, and a retry completes it.
//!
//! # Cluster lifecycle: deletion and credential rotation
//!
//! * A cluster id is derived from (organisation, name, incarnation): the first
//!   registration of a name is incarnation 0, and each deletion releases the
//!   name to the next incarnation, exactly once (`released/{i}` is the
//!   once-guard, as for grant generations). A re-registered name therefore
//!   gets a fresh id, and with it nothing of the old cluster: its grants,
//!   epoch, jobs and credentials are keyed by the old id, and a cluster token
//!   names the old id in `aud`.
//! * Deletion advances the epoch (revoke-all: every grant and token of the
//!   cluster is dead), writes the tombstone, from which instant
//!   [`Store::cluster`] and [`Store::clusters`] do not see the cluster (every
//!   endpoint of it answers 404 and its agent 401), advances the epoch once
//!   more (for writers that raced the tombstone), releases the name, and
//!   clears what is left (best effort: it is unreachable garbage already).
//!   A registration that finds the name's claim taken by a tombstoned cluster
//!   releases the name itself, so a deleter that died midway never blocks it.
//! * Agent credentials: slot 0 is the hash in the (write-once) cluster record;
//!   each rotation appends a slot with the new hash and a deadline. A
//!   credential is valid while it is among the newest [`AGENT_CREDENTIAL_WINDOW`]
//!   slots, no newer slot's deadline has passed, and the agent has not
//!   authenticated with any newer credential (the `used` markers, only ever
//!   set). Nothing is overwritten or deleted, so concurrent rotations each
//!   append their own slot (the newest is the current credential) and an
//!   agent authenticating meanwhile reads a consistent set of write-once slots.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::Clock;
use crate::ids::MemberId;
use crate::kv::{KeyValue, KvError};
use crate::model::{ClusterName, Email};

pub mod claim;
pub mod clusters;
mod expiring;
pub mod grants;
pub mod jobs;
pub mod keys;
pub mod log;
pub mod members;
pub mod rate;
pub mod sessions;
pub mod sign_in;
#[cfg(test)]
mod testing;

pub use clusters::AGENT_CREDENTIAL_WINDOW;
pub use members::member_id;

/// How long a create waits for an in-flight writer before it completes an
/// abandoned claim itself.
pub const CLAIM_PATIENCE: Duration = Duration::from_secs(3);

/// Every way a store operation can fail. It names what went wrong in the
/// store's terms; the API layer alone turns it into a wire error
/// (`crate::api_error_map`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The key-value store itself failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A record could not be encoded as JSON.
    #[error("encoding a record: {0}")]
    Encode(String),
    /// The value at `key` is not the record it should be.
    #[error("record at {key} is corrupt: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// Writers kept moving a claim under this one; it gave up (never seen in practice).
    #[error("{0}")]
    Contention(String),
    /// A record this call just wrote is not there when read back.
    #[error("{0}")]
    Vanished(&'static str),
    /// A live cluster of this name is already registered in the organisation.
    #[error("a cluster named {name} is already registered in this organisation")]
    DuplicateCluster {
        /// The name.
        name: ClusterName,
    },
    /// Exactly this grant (member, role, scope) is already live on the cluster.
    #[error("this member already holds exactly this role at this scope on this cluster")]
    DuplicateGrant,
    /// The email is already in the organisation's directory.
    #[error("{email} is already in the organisation's directory")]
    MemberExists {
        /// The email.
        email: Email,
    },
    /// There is no such thing (the name says what: `member`, `grant`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The member is pinned to another sign-in identity than the session's.
    #[error("{email} ({member_id}) is pinned to another sign-in identity")]
    IdentityPinned {
        /// The member's email.
        email: Email,
        /// The member.
        member_id: MemberId,
    },
    /// The member minted too many tokens; they may try again in `retry_after` seconds.
    #[error("token mint rate limit reached; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until a mint can succeed.
        retry_after: u64,
    },
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode(e.to_string()))
}

fn from_json<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_owned(), reason: e.to_string() })
}

/// The store, over any [`KeyValue`]. Its operations are in the area modules.
pub struct Store<'a> {
    kv: &'a dyn KeyValue,
    clock: &'a dyn Clock,
    patience: Duration,
}

impl<'a> Store<'a> {
    /// The store over `kv`; `clock` times a claim's patience.
    pub fn new(kv: &'a dyn KeyValue, clock: &'a dyn Clock) -> Self {
        Store { kv, clock, patience: CLAIM_PATIENCE }
    }

    /// The same store with another claim patience (tests of abandoned claims).
    pub fn with_claim_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.kv.get(key)? {
            Some(bytes) => Ok(Some(from_json(key, &bytes)?)),
            None => Ok(None),
        }
    }

    fn log(&self, prefix: String) -> log::Log<'a> {
        log::Log::new(self.kv, prefix)
    }
}
