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
//! | `v1/org/{o}/cluster-name/{name}/gen` | counter: incarnation `i` of a cluster name, +1 per deletion | cluster delete |
//! | `v1/org/{o}/cluster-name/{name}` (`i` = 0), `…/{name}/claim/{i}` | claim counter of incarnation `i` | registration |
//! | `v1/org/{o}/cluster-name/{name}/released/{i}` | counter: incarnation `i` released once | cluster delete |
//! | `v1/cluster/{c}` | [`ClusterRecord`] JSON (write-once) | registration |
//! | `v1/cluster/{c}/deleted` | [`ClusterDeletion`] JSON: the tombstone | cluster delete |
//! | `v1/cluster/{c}/credentials/seq`, `…/credentials/{n}` | log of [`CredentialRotation`] JSON (slot 0 is the record's) | rotation |
//! | `v1/cluster/{c}/credentials/{n}/used` | marker: the agent has authenticated with credential `n` | agent |
//! | `v1/cluster/{c}/epoch` | counter: revocation epoch, +1 per revoke-all | revoke-all, cluster delete |
//! | `v1/cluster/{c}/heartbeat` | [`Heartbeat`] JSON | agent |
//! | `v1/cluster/{c}/e/{e}/grants/seq`, `…/grants/{n}` | log of grant ids of epoch `e` | grant create |
//! | `v1/cluster/{c}/e/{e}/gen/{fp}` | counter: generation of grant fingerprint `fp` | grant delete |
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
//! | `v1/org/{o}/member/{m}/pin/gen` | counter: generation of the member's pin, +1 per release | admin release, abandoned pin |
//! | `v1/org/{o}/member/{m}/pin/{g}/claim` | claim counter of pin generation `g` | first sign-in |
//! | `v1/org/{o}/member/{m}/pin/{g}` | [`Pin`] JSON (write-once): the (issuer, subject) of generation `g` | first sign-in |
//! | `v1/org/{o}/member/{m}/pin/{g}/released` | counter: generation `g` released once | admin release, abandoned pin |
//! | `v1/rate/k8s-token/{m}/{minute}` | counter: tokens minted in that minute | token mint |
//!
//! `{o}` is a digest of the organisation name; `{fp}` a digest of (member,
//! role, scope, namespace); ids are `c_…`, `g_…`, `m_…` (see [`crate::ids`]).
//!
//! # How the grant rules hold without transactions
//!
//! * A grant is *live* iff its record exists and its epoch is the cluster's
//!   current epoch. Revoke-all is one `increment` of the epoch: every grant of
//!   the old epoch is dead at that instant, whatever else is in flight.
//! * Exact duplicates: a grant's id is derived from (cluster, epoch,
//!   fingerprint, generation). Creating claims `claim/{fp}/{g}`; only the
//!   writer whose increment returns 1 creates it, the others answer
//!   `duplicate_grant`. Deleting removes the record, then advances the
//!   generation exactly once (`released/{fp}/{g}` is the once-guard), so the
//!   same grant can be created again. A create that finds the claim taken
//!   but no record waits briefly (an in-flight create or delete finishes in
//!   milliseconds) and, if nothing changes, completes the abandoned create
//!   itself: every writer computes the same id, so at most one grant results.
//! * Order of writes: log slot, then record. A crash leaves at worst a slot
//!   whose record is missing, which readers skip.
//! * Status lives in its own key, written only by the agent, so a late report
//!   cannot resurrect a deleted grant's record.
//! * Member state is split by writer (the member's own profile, the admin's
//!   invite and deactivation), so concurrent writers never overwrite each other.
//! * A member is pinned to the (issuer, subject) of its first sign-in, with
//!   the grants' claim scheme: the first sign-in of pin generation `g` claims
//!   `pin/{g}/claim` and writes the write-once `pin/{g}`; every other sign-in
//!   reads it and is refused unless it is the same (issuer, subject). A claim
//!   whose pin never appears within [`CLAIM_PATIENCE`] is given up by
//!   advancing the generation (once, by the `released` guard), and so is the
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

use crate::clock::Clock;
use crate::identity::Identity;
use crate::ids::{self, IdKind};
use crate::kv::{self, KeyValue};
use crate::model::{ClusterKind, Email, GrantSpec, MemberStatus, Namespace, Observed};
use crate::records::{
    ClusterDeletion, ClusterRecord, CredentialRotation, Deactivation, GrantRecord, GrantWithStatus, Heartbeat, Invite,
    Job, Member, MemberProfile, Pin, Revocation,
};

/// How long a create waits for an in-flight writer before it completes an
/// abandoned claim itself.
pub const CLAIM_PATIENCE: Duration = Duration::from_secs(3);
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// Every way a store operation can fail. It names what went wrong in the
/// store's terms; the API layer alone turns it into a wire error
/// (`crate::api_error_map`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The key-value store itself failed.
    #[error(transparent)]
    Kv(#[from] kv::StoreError),
    /// A record could not be encoded as JSON.
    #[error("encoding a record: {0}")]
    Encode(String),
    /// The value at `key` is not the record it should be.
    #[error("record at {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// The system has no randomness for a new secret.
    #[error("no randomness: {0}")]
    NoRandomness(String),
    /// Writers kept moving a claim under this one; it gave up (never seen in practice).
    #[error("{0}")]
    Contention(String),
    /// A record this call just wrote is not there when read back.
    #[error("{0}")]
    Vanished(&'static str),
    /// A live cluster of this name is already registered in the organisation.
    #[error("a cluster named {name} is already registered in this organisation")]
    DuplicateCluster { name: Namespace },
    /// Exactly this grant (member, role, scope) is already live on the cluster.
    #[error("this member already holds exactly this role at this scope on this cluster")]
    DuplicateGrant,
    /// The email is already in the organisation's directory.
    #[error("{email} is already in the organisation's directory")]
    MemberExists { email: Email },
    /// There is no such thing (the name says what: `member`, `grant`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The member is pinned to another sign-in identity than the session's.
    #[error("{email} ({member_id}) is pinned to another sign-in identity")]
    IdentityPinned { email: Email, member_id: String },
    /// The member minted too many tokens; they may try again in `retry_after` seconds.
    #[error("token mint rate limit reached; retry in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
}

/// How many of a cluster's newest credential slots authentication looks at:
/// a credential older than that is refused whatever its deadline (so at most
/// this many credentials are ever valid at once).
pub const AGENT_CREDENTIAL_WINDOW: i64 = 8;

/// How often a sign-in starts over on a pin whose generation moved under it
/// before it fails with [`StoreError::Contention`]: each restart means another writer made
/// progress, so this is never reached in practice.
const PIN_ATTEMPTS: usize = 16;

/// Whether `pin` is the (issuer, subject) of `identity`.
fn pin_is(pin: &Pin, identity: &Identity) -> bool {
    pin.issuer == identity.issuer && pin.subject == identity.subject
}

fn org_key(org: &str) -> String {
    ids::digest_hex(&[org])[..24].to_owned()
}

/// The member id of an email in an organisation: stable, so an invite and the
/// later sign-in meet at the same record.
pub fn member_id(org: &str, email: &Email) -> String {
    IdKind::Member.derive(&[org, email.as_str()])
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_owned(), reason: e.to_string() })
}

/// An append-only log: `{prefix}/seq` counts, `{prefix}/{n}` holds entry n.
struct Log<'a> {
    kv: &'a dyn KeyValue,
    prefix: String,
}

impl<'a> Log<'a> {
    fn new(kv: &'a dyn KeyValue, prefix: String) -> Self {
        Log { kv, prefix }
    }

    fn append(&self, entry: &[u8]) -> Result<i64, kv::StoreError> {
        let n = self.kv.increment(&format!("{}/seq", self.prefix), 1)?;
        self.kv.set(&format!("{}/{n}", self.prefix), entry)?;
        Ok(n)
    }

    fn len(&self) -> Result<i64, kv::StoreError> {
        self.kv.increment(&format!("{}/seq", self.prefix), 0)
    }

    /// Entries `from..=to` that exist (a slot whose writer died is skipped).
    fn range(&self, from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>, kv::StoreError> {
        if to < from {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = (from..=to).map(|n| format!("{}/{n}", self.prefix)).collect();
        let values = self.kv.get_many(&keys)?;
        Ok((from..=to).zip(values).filter_map(|(n, v)| v.map(|v| (n, v))).collect())
    }

    /// Distinct string entries, in first-appearance order.
    fn distinct(&self) -> Result<Vec<String>, kv::StoreError> {
        let mut seen = std::collections::HashSet::new();
        Ok(self
            .range(1, self.len()?)?
            .into_iter()
            .filter_map(|(_, v)| String::from_utf8(v).ok())
            .filter(|s| seen.insert(s.clone()))
            .collect())
    }
}

enum Claim {
    /// Ours: we create the record.
    Won,
    /// The record exists: a true duplicate.
    Exists,
    /// The thing the claim was for moved on (generation advanced): start over.
    Retry,
    /// Claimed long ago by a writer that never wrote the record: complete it.
    Abandoned,
}

/// The store, over any [`KeyValue`].
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

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.kv.get(key)? {
            Some(bytes) => Ok(Some(from_json(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Claim `claim_key`; if someone else holds it, wait for `record_key` to
    /// appear or `still_current` to turn false, up to [`CLAIM_PATIENCE`].
    fn claim(
        &self,
        claim_key: &str,
        record_key: &str,
        still_current: &dyn Fn() -> Result<bool, kv::StoreError>,
    ) -> Result<Claim, kv::StoreError> {
        if self.kv.increment(claim_key, 1)? == 1 {
            return Ok(Claim::Won);
        }
        let deadline = self.clock.monotonic() + self.patience;
        loop {
            if self.kv.get(record_key)?.is_some() {
                return Ok(Claim::Exists);
            }
            if !still_current()? {
                return Ok(Claim::Retry);
            }
            if self.clock.monotonic() >= deadline {
                return Ok(Claim::Abandoned);
            }
            self.clock.sleep(CLAIM_POLL);
        }
    }

    // ----- clusters -------------------------------------------------------

    /// The id of incarnation `i` of a cluster name (incarnation 0 keeps the
    /// id derived from the organisation and the name alone).
    fn cluster_id(org: &str, name: &str, incarnation: i64) -> String {
        match incarnation {
            0 => IdKind::Cluster.derive(&[org, name]),
            i => IdKind::Cluster.derive(&[org, name, &i.to_string()]),
        }
    }

    fn name_key(org: &str, name: &str) -> String {
        format!("v1/org/{}/cluster-name/{name}", org_key(org))
    }

    fn name_claim_key(org: &str, name: &str, incarnation: i64) -> String {
        match incarnation {
            0 => Self::name_key(org, name),
            i => format!("{}/claim/{i}", Self::name_key(org, name)),
        }
    }

    /// The name's current incarnation.
    fn name_incarnation(&self, org: &str, name: &str) -> Result<i64, kv::StoreError> {
        self.kv.increment(&format!("{}/gen", Self::name_key(org, name)), 0)
    }

    /// Release incarnation `i` of a name (once, whoever calls it).
    fn release_name(&self, org: &str, name: &str, incarnation: i64) -> Result<(), kv::StoreError> {
        let key = Self::name_key(org, name);
        if self.kv.increment(&format!("{key}/released/{incarnation}"), 1)? == 1 {
            self.kv.increment(&format!("{key}/gen"), 1)?;
        }
        Ok(())
    }

    /// Register a cluster. Returns the record and its agent credential, which
    /// is shown once and never stored.
    #[allow(clippy::too_many_arguments)]
    pub fn register_cluster(
        &self,
        org: &str,
        name: &Namespace,
        kind: ClusterKind,
        proxy_url: &str,
        ca_pem: Option<&str>,
        created_by: &str,
        now: u64,
    ) -> Result<(ClusterRecord, String), StoreError> {
        let id = loop {
            let incarnation = self.name_incarnation(org, name.as_str())?;
            let id = Self::cluster_id(org, name.as_str(), incarnation);
            let record_key = format!("v1/cluster/{id}");
            let claim_key = Self::name_claim_key(org, name.as_str(), incarnation);
            let still_current = || Ok(self.name_incarnation(org, name.as_str())? == incarnation);
            match self.claim(&claim_key, &record_key, &still_current)? {
                Claim::Won | Claim::Abandoned => break id,
                Claim::Retry => continue,
                Claim::Exists => {
                    // Deleted, but its deleter died before releasing the name: finish that, and retry.
                    if self.kv.get(&format!("v1/cluster/{id}/deleted"))?.is_some() {
                        self.release_name(org, name.as_str(), incarnation)?;
                        continue;
                    }
                    return Err(StoreError::DuplicateCluster { name: name.clone() });
                }
            }
        };
        let credential = ids::new_secret("lya_").map_err(|e| StoreError::NoRandomness(e.to_string()))?;
        let record = ClusterRecord {
            id: id.clone(),
            org: org.to_owned(),
            name: name.as_str().to_owned(),
            kind,
            proxy_url: proxy_url.to_owned(),
            ca_pem: ca_pem.map(str::to_owned),
            agent_credential_hash: ids::secret_hash(&credential),
            created_at: now,
            created_by: created_by.to_owned(),
        };
        Log::new(self.kv, format!("v1/org/{}/clusters", org_key(org))).append(id.as_bytes())?;
        self.kv.set(&format!("v1/cluster/{id}"), &to_json(&record)?)?;
        Ok((record, credential))
    }

    /// A cluster that exists and is not deleted.
    pub fn cluster(&self, id: &str) -> Result<Option<ClusterRecord>, StoreError> {
        if !IdKind::Cluster.accepts(id) {
            return Ok(None);
        }
        Ok(self.live_clusters(&[id.to_owned()])?.pop())
    }

    /// The organisation's clusters that are not deleted, in registration order.
    pub fn clusters(&self, org: &str) -> Result<Vec<ClusterRecord>, StoreError> {
        let ids = Log::new(self.kv, format!("v1/org/{}/clusters", org_key(org))).distinct()?;
        let mut clusters = self.live_clusters(&ids)?;
        clusters.retain(|c| c.org == org);
        Ok(clusters)
    }

    /// The records of `ids` that exist and have no tombstone, in order.
    fn live_clusters(&self, ids: &[String]) -> Result<Vec<ClusterRecord>, StoreError> {
        let keys: Vec<String> =
            ids.iter().flat_map(|id| [format!("v1/cluster/{id}"), format!("v1/cluster/{id}/deleted")]).collect();
        let values = self.kv.get_many(&keys)?;
        let mut out = Vec::new();
        for (key, pair) in keys.chunks(2).zip(values.chunks(2)) {
            if let [Some(bytes), None] = pair {
                out.push(from_json(&key[0], bytes)?);
            }
        }
        Ok(out)
    }

    /// Delete a cluster: revoke everything, tombstone it, revoke again,
    /// release its name, then clear what is left (see the module documentation).
    pub fn delete_cluster(&self, cluster: &ClusterRecord, by: &str, now: u64) -> Result<(), StoreError> {
        let c = &cluster.id;
        // Revoke before the tombstone, so that a failure leaves a cluster that a retry can delete,
        // and again after it, so that a grant created or a token minted while the tombstone was
        // being written belongs to a dead epoch too.
        self.revoke_all(c, now)?;
        self.kv.set(&format!("v1/cluster/{c}/deleted"), &to_json(&ClusterDeletion { by: by.to_owned(), at: now })?)?;
        self.revoke_all(c, now)?;
        let incarnation = self.name_incarnation(&cluster.org, &cluster.name)?;
        if Self::cluster_id(&cluster.org, &cluster.name, incarnation) == *c {
            self.release_name(&cluster.org, &cluster.name, incarnation)?;
        }
        // Garbage now (nothing reads it without the cluster); a failure here is not the caller's.
        let _ = self.clear_cluster_leftovers(c);
        Ok(())
    }

    /// Delete the jobs, the heartbeat and the credential slots of a deleted cluster.
    fn clear_cluster_leftovers(&self, c: &str) -> Result<(), kv::StoreError> {
        let mut keys = vec![format!("v1/cluster/{c}/heartbeat"), format!("v1/cluster/{c}/jobs/acked")];
        let jobs = Log::new(self.kv, format!("v1/cluster/{c}/jobs")).len()?;
        keys.extend((1..=jobs).map(|n| format!("v1/cluster/{c}/jobs/{n}")));
        let slots = Log::new(self.kv, format!("v1/cluster/{c}/credentials")).len()?;
        keys.extend((0..=slots).map(|n| format!("v1/cluster/{c}/credentials/{n}/used")));
        keys.extend((1..=slots).map(|n| format!("v1/cluster/{c}/credentials/{n}")));
        self.kv.delete_many(&keys)
    }

    // ----- agent credentials ------------------------------------------------

    /// Issue a new agent credential for the cluster; every older one stays
    /// valid until `previous_valid_until` (unix seconds) or until the agent
    /// authenticates with this one, whichever comes first. Returns the
    /// credential, which is shown once and never stored.
    pub fn rotate_agent_credential(
        &self,
        cluster_id: &str,
        created_by: &str,
        previous_valid_until: u64,
        now: u64,
    ) -> Result<String, StoreError> {
        let credential = ids::new_secret("lya_").map_err(|e| StoreError::NoRandomness(e.to_string()))?;
        let rotation = CredentialRotation {
            hash: ids::secret_hash(&credential),
            created_at: now,
            created_by: created_by.to_owned(),
            previous_valid_until,
        };
        Log::new(self.kv, format!("v1/cluster/{cluster_id}/credentials")).append(&to_json(&rotation)?)?;
        Ok(credential)
    }

    /// Whether `credential` is a valid agent credential of `cluster` at `now`
    /// (the rule is in the module documentation). Authenticating with a
    /// credential for the first time retires every older one.
    pub fn check_agent_credential(
        &self,
        cluster: &ClusterRecord,
        credential: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        struct Slot {
            n: i64,
            hash: String,
            /// 0 for slot 0, which is never newer than another.
            previous_valid_until: u64,
            used: bool,
        }
        let prefix = format!("v1/cluster/{}/credentials", cluster.id);
        let newest = Log::new(self.kv, prefix.clone()).len()?;
        let oldest = newest.saturating_sub(AGENT_CREDENTIAL_WINDOW - 1).max(0);
        let keys: Vec<String> =
            (oldest..=newest).flat_map(|n| [format!("{prefix}/{n}"), format!("{prefix}/{n}/used")]).collect();
        let values = self.kv.get_many(&keys)?;
        let mut slots = Vec::new();
        for ((n, key), pair) in (oldest..=newest).zip(keys.chunks(2)).zip(values.chunks(2)) {
            let used = pair[1].is_some();
            if n == 0 {
                slots.push(Slot { n, hash: cluster.agent_credential_hash.clone(), previous_valid_until: 0, used });
            } else if let Some(bytes) = &pair[0] {
                // A slot whose writer is still writing (or died) is skipped.
                let rotation: CredentialRotation = from_json(&key[0], bytes)?;
                slots.push(Slot { n, hash: rotation.hash, previous_valid_until: rotation.previous_valid_until, used });
            }
        }
        let presented = ids::secret_hash(credential);
        let Some(at) = slots.iter().position(|s| ids::ct_eq(&s.hash, &presented)) else {
            return Ok(false);
        };
        let newer = &slots[at + 1..];
        let superseded = newer.iter().any(|s| s.used || now >= s.previous_valid_until);
        if superseded {
            return Ok(false);
        }
        let slot = &slots[at];
        if !slot.used && slot.n > 0 {
            self.kv.set(&format!("{prefix}/{}/used", slot.n), b"1")?;
        }
        Ok(true)
    }

    pub fn heartbeat(&self, cluster_id: &str) -> Result<Option<Heartbeat>, StoreError> {
        self.get_json(&format!("v1/cluster/{cluster_id}/heartbeat"))
    }

    pub fn record_heartbeat(&self, cluster_id: &str, beat: &Heartbeat) -> Result<(), StoreError> {
        Ok(self.kv.set(&format!("v1/cluster/{cluster_id}/heartbeat"), &to_json(beat)?)?)
    }

    /// Whether the cluster's agent has sent a heartbeat within `offline_after` seconds.
    pub fn agent_online(&self, cluster_id: &str, now: u64, offline_after: u64) -> Result<bool, StoreError> {
        Ok(self.heartbeat(cluster_id)?.is_some_and(|h| h.is_fresh(now, offline_after)))
    }

    // ----- grants ---------------------------------------------------------

    /// The cluster's current revocation epoch.
    pub fn epoch(&self, cluster_id: &str) -> Result<i64, StoreError> {
        Ok(self.kv.increment(&format!("v1/cluster/{cluster_id}/epoch"), 0)?)
    }

    /// Create a grant; [`StoreError::DuplicateGrant`] if exactly this grant is live.
    pub fn create_grant(
        &self,
        cluster_id: &str,
        spec: &GrantSpec,
        member_id: &str,
        created_by: &str,
        now: u64,
    ) -> Result<GrantRecord, StoreError> {
        let epoch = self.epoch(cluster_id)?;
        let fp = spec.fingerprint();
        let base = format!("v1/cluster/{cluster_id}/e/{epoch}");
        let gen_key = format!("{base}/gen/{fp}");
        loop {
            let generation = self.kv.increment(&gen_key, 0)?;
            let id = IdKind::Grant.derive(&[cluster_id, &epoch.to_string(), &fp, &generation.to_string()]);
            let record_key = format!("v1/cluster/{cluster_id}/grant/{id}");
            let claim_key = format!("{base}/claim/{fp}/{generation}");
            let still_current = || Ok(self.kv.increment(&gen_key, 0)? == generation);
            match self.claim(&claim_key, &record_key, &still_current)? {
                Claim::Exists => return Err(StoreError::DuplicateGrant),
                Claim::Retry => continue,
                Claim::Won | Claim::Abandoned => {}
            }
            let record = GrantRecord {
                id: id.clone(),
                cluster_id: cluster_id.to_owned(),
                member_id: member_id.to_owned(),
                email: spec.email().clone(),
                role: spec.role(),
                scope: spec.scope().kind(),
                namespace: spec.scope().namespace().cloned(),
                epoch,
                fingerprint: fp.clone(),
                generation,
                created_at: now,
                created_by: created_by.to_owned(),
            };
            Log::new(self.kv, format!("{base}/grants")).append(id.as_bytes())?;
            self.kv.set(&record_key, &to_json(&record)?)?;
            self.enqueue(cluster_id, &Job::GrantCreated { grant_id: id, epoch, at: now })?;
            return Ok(record);
        }
    }

    /// A live grant by id.
    pub fn grant(&self, cluster_id: &str, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        if !IdKind::Grant.accepts(grant_id) {
            return Ok(None);
        }
        let record: Option<GrantRecord> = self.get_json(&format!("v1/cluster/{cluster_id}/grant/{grant_id}"))?;
        let epoch = self.epoch(cluster_id)?;
        Ok(record.filter(|g| g.epoch == epoch && g.cluster_id == cluster_id))
    }

    /// Every live grant of the cluster, with its reported status.
    pub fn grants(&self, cluster_id: &str) -> Result<Vec<GrantWithStatus>, StoreError> {
        let epoch = self.epoch(cluster_id)?;
        self.grants_at(cluster_id, epoch)
    }

    /// The grants of revocation epoch `epoch` (live iff it is the current
    /// one). For a caller that must use one epoch for several decisions, e.g.
    /// a token's `rev` and the grant that justifies it.
    pub fn grants_at(&self, cluster_id: &str, epoch: i64) -> Result<Vec<GrantWithStatus>, StoreError> {
        let ids = Log::new(self.kv, format!("v1/cluster/{cluster_id}/e/{epoch}/grants")).distinct()?;
        let mut keys = Vec::with_capacity(ids.len() * 2);
        for id in &ids {
            keys.push(format!("v1/cluster/{cluster_id}/grant/{id}"));
            keys.push(format!("v1/cluster/{cluster_id}/grant/{id}/observed"));
        }
        let values = self.kv.get_many(&keys)?;
        let mut out = Vec::new();
        for (pair_keys, pair) in keys.chunks(2).zip(values.chunks(2)) {
            let (Some(record), observed) = (&pair[0], &pair[1]) else { continue };
            let grant: GrantRecord = from_json(&pair_keys[0], record)?;
            if grant.epoch != epoch {
                continue;
            }
            // A corrupt status report must not hide the grant: show it as unreported.
            let observed = observed.as_ref().and_then(|b| serde_json::from_slice(b).ok());
            out.push(GrantWithStatus { grant, observed });
        }
        Ok(out)
    }

    /// Delete a live grant. [`StoreError::NotFound`] if there is none with that id.
    pub fn delete_grant(&self, cluster_id: &str, grant_id: &str, now: u64) -> Result<GrantRecord, StoreError> {
        let grant = self.grant(cluster_id, grant_id)?.ok_or(StoreError::NotFound("grant"))?;
        let record_key = format!("v1/cluster/{cluster_id}/grant/{grant_id}");
        self.kv.delete_many(&[format!("{record_key}/observed"), record_key])?;
        let base = format!("v1/cluster/{cluster_id}/e/{}", grant.epoch);
        let released = format!("{base}/released/{}/{}", grant.fingerprint, grant.generation);
        if self.kv.increment(&released, 1)? == 1 {
            self.kv.increment(&format!("{base}/gen/{}", grant.fingerprint), 1)?;
        }
        self.enqueue(cluster_id, &Job::GrantDeleted { grant_id: grant.id.clone(), epoch: grant.epoch, at: now })?;
        Ok(grant)
    }

    /// Revoke every grant of the cluster at once, by advancing its epoch, then
    /// clear the old epoch's records (best effort: they are dead already).
    pub fn revoke_all(&self, cluster_id: &str, now: u64) -> Result<Revocation, StoreError> {
        let before = self.epoch(cluster_id)?;
        let doomed = self.grants_at(cluster_id, before)?;
        let epoch = self.kv.increment(&format!("v1/cluster/{cluster_id}/epoch"), 1)?;
        self.enqueue(cluster_id, &Job::RevokeAll { epoch, at: now })?;
        let keys: Vec<String> = doomed
            .iter()
            .flat_map(|g| {
                let k = format!("v1/cluster/{cluster_id}/grant/{}", g.grant.id);
                [format!("{k}/observed"), k]
            })
            .collect();
        // A failure here is not the caller's: the grants are already dead by
        // the epoch, and their records are only garbage now.
        let _ = self.kv.delete_many(&keys);
        Ok(Revocation { revoked: doomed.len(), epoch })
    }

    /// Record what the agent observed for a grant.
    pub fn record_observed(&self, cluster_id: &str, grant_id: &str, observed: &Observed) -> Result<(), StoreError> {
        Ok(self.kv.set(&format!("v1/cluster/{cluster_id}/grant/{grant_id}/observed"), &to_json(observed)?)?)
    }

    // ----- jobs -----------------------------------------------------------

    pub fn enqueue(&self, cluster_id: &str, job: &Job) -> Result<i64, StoreError> {
        Ok(Log::new(self.kv, format!("v1/cluster/{cluster_id}/jobs")).append(&to_json(job)?)?)
    }

    /// Jobs after sequence number `after`, at most `limit`.
    pub fn jobs_after(&self, cluster_id: &str, after: i64, limit: i64) -> Result<Vec<(i64, Job)>, StoreError> {
        let log = Log::new(self.kv, format!("v1/cluster/{cluster_id}/jobs"));
        let last = log.len()?.min(after.saturating_add(limit));
        log.range(after + 1, last)?
            .into_iter()
            .map(|(n, bytes)| Ok((n, from_json(&format!("job {n}"), &bytes)?)))
            .collect()
    }

    /// The agent's acknowledged job cursor (0 before the first ack).
    pub fn acked_jobs(&self, cluster_id: &str) -> Result<i64, StoreError> {
        Ok(self.get_json(&format!("v1/cluster/{cluster_id}/jobs/acked"))?.unwrap_or(0))
    }

    /// Acknowledge jobs up to `through` (never beyond the last job, never
    /// backwards). A racing ack may win with a lower value: that only makes a
    /// level-triggered agent look once more.
    pub fn ack_jobs(&self, cluster_id: &str, through: i64) -> Result<i64, StoreError> {
        let last = Log::new(self.kv, format!("v1/cluster/{cluster_id}/jobs")).len()?;
        let acked = self.acked_jobs(cluster_id)?.max(through.min(last));
        self.kv.set(&format!("v1/cluster/{cluster_id}/jobs/acked"), &to_json(&acked)?)?;
        Ok(acked)
    }

    /// Record the agent's results for live grants; results for grants that
    /// are gone (deleted, revoked) are ignored, so a late report never
    /// resurrects anything. Returns how many were recorded.
    pub fn record_reports(&self, cluster_id: &str, results: &[(String, Observed)]) -> Result<usize, StoreError> {
        let live: std::collections::HashSet<String> =
            self.grants(cluster_id)?.into_iter().map(|g| g.grant.id).collect();
        let mut recorded = 0;
        for (grant_id, observed) in results {
            if live.contains(grant_id) {
                self.record_observed(cluster_id, grant_id, observed)?;
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    /// Count a token mint by `member_id` at `now` and refuse it ([`StoreError::RateLimited`]) if the
    /// member minted more than `per_minute` in the last 60 seconds.
    ///
    /// A sliding window over two fixed ones: the previous minute's count is
    /// weighted by the part of it that is still within the last 60 seconds, so
    /// a burst across a minute boundary gets no second allowance. Counters are
    /// `increment`s (no lost counts under concurrency); the small index
    /// `…/windows` lists the minutes that have a counter, so every counter is
    /// deleted once it is older than the previous minute, even after a gap.
    /// Refused attempts count too: hammering keeps a caller limited.
    pub fn limit_token_mints(&self, member_id: &str, per_minute: i64, now: u64) -> Result<(), StoreError> {
        let prefix = format!("v1/rate/k8s-token/{member_id}");
        let window = now / 60;
        let count = self.kv.increment(&format!("{prefix}/{window}"), 1)?;
        let index_key = format!("{prefix}/windows");
        let mut windows: Vec<u64> = self.get_json(&index_key)?.unwrap_or_default();
        if count == 1 {
            // The first mint of this minute maintains the index (one writer per minute).
            let (keep, stale): (Vec<u64>, Vec<u64>) = windows.iter().partition(|&&w| w + 1 >= window);
            let stale: Vec<String> = stale.iter().map(|w| format!("{prefix}/{w}")).collect();
            self.kv.delete_many(&stale)?;
            windows = keep;
            if !windows.contains(&window) {
                windows.push(window);
            }
            windows.sort_unstable();
            self.kv.set(&index_key, &to_json(&windows)?)?;
        }
        let previous = match window.checked_sub(1) {
            Some(p) if windows.contains(&p) => self.kv.increment(&format!("{prefix}/{p}"), 0)?,
            _ => 0,
        };
        let elapsed = (now % 60) as i64;
        // Rounded up, so that the estimate never undercounts the last 60 seconds.
        let estimate = |elapsed: i64| (previous.max(0) * (60 - elapsed) + 59) / 60 + count;
        if estimate(elapsed) <= per_minute {
            return Ok(());
        }
        // When the estimate (with this minute's count as it is) falls within the limit.
        let retry_after = (elapsed + 1..60).find(|&e| estimate(e) <= per_minute).map_or(60 - elapsed, |e| e - elapsed);
        Err(StoreError::RateLimited { retry_after: retry_after.max(1) as u64 })
    }

    // ----- members --------------------------------------------------------

    fn member_key(org: &str, id: &str) -> String {
        format!("v1/org/{}/member/{id}", org_key(org))
    }

    /// Record a signed-in identity in the directory (on first sign-in, or when
    /// its email, name or role changed) and return its status. The member is
    /// pinned to the first (issuer, subject) that signs in with its email; a
    /// session of another identity is refused until an admin releases the pin
    /// ([`Store::release_identity`]).
    pub fn admit(&self, identity: &Identity, now: u64) -> Result<Member, StoreError> {
        let org = &identity.org;
        let id = member_id(org, &identity.email);
        let key = Self::member_key(org, &id);
        let generation = self.kv.increment(&format!("{key}/pin/gen"), 0)?;
        let keys = [key.clone(), format!("{key}/deactivated"), format!("{key}/pin/{generation}")];
        let values = self.kv.get_many(&keys)?;
        let existing: Option<MemberProfile> = values[0].as_deref().map(|b| from_json(&keys[0], b)).transpose()?;
        let pinned = match values[2].as_deref().map(|b| from_json::<Pin>(&keys[2], b)).transpose()? {
            Some(pin) => pin_is(&pin, identity),
            None => self.pin(&key, identity, existing.as_ref(), now)?,
        };
        if !pinned {
            return Err(StoreError::IdentityPinned { email: identity.email.clone(), member_id: id });
        }
        let joined_at = existing.as_ref().map_or(now, |p| p.joined_at);
        let profile = MemberProfile {
            id: id.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            role: identity.role,
            joined_at,
        };
        if existing.as_ref() != Some(&profile) {
            if existing.is_none() {
                // Slot first: a crash after it leaves a slot without a record, which readers skip.
                Log::new(self.kv, format!("v1/org/{}/members", org_key(org))).append(id.as_bytes())?;
            }
            self.kv.set(&key, &to_json(&profile)?)?;
        }
        let deactivated = values[1].is_some();
        Ok(Member {
            id,
            email: profile.email,
            name: profile.name,
            status: if deactivated { MemberStatus::Deactivated } else { MemberStatus::Active },
            role: Some(profile.role),
        })
    }

    /// Pin the member at `key` to `identity` if its current pin generation has
    /// no pin yet, and say whether the member is (now) pinned to `identity`.
    /// A member who signed in before pins existed is pinned to the identity of
    /// its profile, not to whoever signs in first after the upgrade.
    fn pin(
        &self,
        key: &str,
        identity: &Identity,
        profile: Option<&MemberProfile>,
        now: u64,
    ) -> Result<bool, StoreError> {
        let gen_key = format!("{key}/pin/gen");
        for _ in 0..PIN_ATTEMPTS {
            let generation = self.kv.increment(&gen_key, 0)?;
            let pin_key = format!("{key}/pin/{generation}");
            if let Some(pin) = self.get_json::<Pin>(&pin_key)? {
                return Ok(pin_is(&pin, identity));
            }
            let still_current = || Ok(self.kv.increment(&gen_key, 0)? == generation);
            match self.claim(&format!("{pin_key}/claim"), &pin_key, &still_current)? {
                Claim::Exists | Claim::Retry => continue,
                Claim::Abandoned => self.release_pin(key, generation)?,
                Claim::Won => {
                    let pin = match profile.filter(|_| generation == 0) {
                        Some(p) => Pin { issuer: p.issuer.clone(), subject: p.subject.clone(), at: now },
                        None => Pin { issuer: identity.issuer.clone(), subject: identity.subject.clone(), at: now },
                    };
                    self.kv.set(&pin_key, &to_json(&pin)?)?;
                    // A claim given up as abandoned meanwhile holds nothing: start over.
                    if still_current()? {
                        return Ok(pin_is(&pin, identity));
                    }
                }
            }
        }
        Err(StoreError::Contention(format!("the pin at {key} kept moving; gave up after {PIN_ATTEMPTS} attempts")))
    }

    /// Give up pin generation `generation` (once, whoever else tries too).
    fn release_pin(&self, key: &str, generation: i64) -> Result<(), StoreError> {
        if self.kv.increment(&format!("{key}/pin/{generation}/released"), 1)? == 1 {
            self.kv.increment(&format!("{key}/pin/gen"), 1)?;
        }
        Ok(())
    }

    /// Release a member's sign-in identity: the next sign-in with the
    /// member's email pins it again, and takes over the member with its
    /// grants and status. For an account that changed at the identity
    /// provider; [`StoreError::NotFound`] if there is no such member.
    pub fn release_identity(&self, org: &str, id: &str) -> Result<Member, StoreError> {
        let member = self.member(org, id)?.ok_or(StoreError::NotFound("member"))?;
        let key = Self::member_key(org, id);
        let generation = self.kv.increment(&format!("{key}/pin/gen"), 0)?;
        if self.kv.get(&format!("{key}/pin/{generation}"))?.is_some() {
            self.release_pin(&key, generation)?;
        }
        Ok(member)
    }

    /// A member's directory entry, whatever their status.
    pub fn member(&self, org: &str, id: &str) -> Result<Option<Member>, StoreError> {
        if !IdKind::Member.accepts(id) {
            return Ok(None);
        }
        let key = Self::member_key(org, id);
        let keys = [key.clone(), format!("{key}/invite"), format!("{key}/deactivated")];
        let values = self.kv.get_many(&keys)?;
        Self::member_from(&keys, id, &values)
    }

    fn member_from(keys: &[String], id: &str, values: &[Option<Vec<u8>>]) -> Result<Option<Member>, StoreError> {
        let profile: Option<MemberProfile> = values[0].as_deref().map(|b| from_json(&keys[0], b)).transpose()?;
        let invite: Option<Invite> = values[1].as_deref().map(|b| from_json(&keys[1], b)).transpose()?;
        let deactivated = values[2].is_some();
        let status = match (&profile, &invite, deactivated) {
            (None, None, _) => return Ok(None),
            (_, _, true) => MemberStatus::Deactivated,
            (Some(_), _, false) => MemberStatus::Active,
            (None, Some(_), false) => MemberStatus::Invited,
        };
        let (email, name, role) = match (profile, invite) {
            (Some(p), _) => (p.email, p.name, Some(p.role)),
            (None, Some(i)) => (i.email, None, None),
            (None, None) => unreachable!("handled above"),
        };
        Ok(Some(Member { id: id.to_owned(), email, name, status, role }))
    }

    pub fn member_by_email(&self, org: &str, email: &Email) -> Result<Option<Member>, StoreError> {
        self.member(org, &member_id(org, email))
    }

    /// The whole directory of an organisation.
    pub fn members(&self, org: &str) -> Result<Vec<Member>, StoreError> {
        let ids = Log::new(self.kv, format!("v1/org/{}/members", org_key(org))).distinct()?;
        let mut keys = Vec::with_capacity(ids.len() * 3);
        for id in &ids {
            let key = Self::member_key(org, id);
            let (invite, deactivated) = (format!("{key}/invite"), format!("{key}/deactivated"));
            keys.extend([key, invite, deactivated]);
        }
        let values = self.kv.get_many(&keys)?;
        let mut out = Vec::new();
        for ((id, k), v) in ids.iter().zip(keys.chunks(3)).zip(values.chunks(3)) {
            if let Some(m) = Self::member_from(k, id, v)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Invite an email to the organisation. [`StoreError::MemberExists`] if already known.
    pub fn invite(&self, org: &str, email: &Email, by: &str, now: u64) -> Result<Member, StoreError> {
        let id = member_id(org, email);
        if self.member(org, &id)?.is_some() {
            return Err(StoreError::MemberExists { email: email.clone() });
        }
        let key = Self::member_key(org, &id);
        Log::new(self.kv, format!("v1/org/{}/members", org_key(org))).append(id.as_bytes())?;
        self.kv.set(
            &format!("{key}/invite"),
            &to_json(&Invite { email: email.clone(), invited_by: by.to_owned(), at: now })?,
        )?;
        self.member(org, &id)?.ok_or(StoreError::Vanished("invite vanished right after it was written"))
    }

    /// Deactivate (or reactivate) a member.
    ///
    /// Deactivation ends access at once: the marker is written first, and
    /// from that instant the cluster's access state leaves out the member's
    /// grants ([`Store::deactivated_members`]); then every grant of the member
    /// on the organisation's clusters is deleted, each with a job that makes
    /// the agent remove its binding. Reactivation first deletes whatever a
    /// failed deactivation or a racing create left behind, and only then lifts
    /// the marker, so it never revives old access: an admin grants again.
    /// Both are idempotent, so a failed request is completed by retrying it.
    pub fn set_deactivated(
        &self,
        org: &str,
        id: &str,
        deactivated: bool,
        by: &str,
        now: u64,
    ) -> Result<Member, StoreError> {
        if self.member(org, id)?.is_none() {
            return Err(StoreError::NotFound("member"));
        }
        let key = format!("{}/deactivated", Self::member_key(org, id));
        if deactivated {
            self.kv.set(&key, &to_json(&Deactivation { by: by.to_owned(), at: now })?)?;
            self.delete_member_grants(org, id, now)?;
        } else {
            self.delete_member_grants(org, id, now)?;
            self.kv.delete(&key)?;
        }
        self.member(org, id)?.ok_or(StoreError::NotFound("member"))
    }

    /// Delete every live grant of a member on the organisation's clusters;
    /// returns how many this call deleted.
    fn delete_member_grants(&self, org: &str, member_id: &str, now: u64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for cluster in self.clusters(org)? {
            for g in self.grants(&cluster.id)? {
                if g.grant.member_id != member_id {
                    continue;
                }
                match self.delete_grant(&cluster.id, &g.grant.id, now) {
                    Ok(_) => deleted += 1,
                    // Deleted meanwhile by someone else: just as good.
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }

    /// Which of `member_ids` are deactivated in `org` (one batch read).
    pub fn deactivated_members(
        &self,
        org: &str,
        member_ids: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let keys: Vec<String> =
            member_ids.iter().map(|m| format!("{}/deactivated", Self::member_key(org, m))).collect();
        let values = self.kv.get_many(&keys)?;
        Ok(member_ids.iter().zip(values).filter(|(_, v)| v.is_some()).map(|(m, _)| (*m).to_owned()).collect())
    }
}
