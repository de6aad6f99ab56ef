//! Every key of the store's layout (the table in [`super`]'s documentation),
//! spelled once. A key is built only from ids (checked types), digests and
//! numbers, never from free text: a cluster name is a DNS-1123 label, an
//! organisation name is digested.

use std::fmt::Display;

use crate::ids::{self, ClusterId, GrantId, MemberId};
use crate::model::ClusterName;

/// The digest that stands for an organisation in keys.
fn org(org: &str) -> String {
    ids::digest_hex(&[org])[..24].to_owned()
}

// ----- organisations -------------------------------------------------------

/// Log of the organisation's cluster ids.
pub fn org_clusters(o: &str) -> String {
    format!("v1/org/{}/clusters", org(o))
}

/// The claim counter of incarnation 0 of a cluster name, and the prefix of its other keys.
pub fn cluster_name(o: &str, name: &ClusterName) -> String {
    format!("v1/org/{}/cluster-name/{name}", org(o))
}

/// Counter: the current incarnation of a cluster name.
pub fn cluster_name_gen(o: &str, name: &ClusterName) -> String {
    format!("{}/gen", cluster_name(o, name))
}

/// The claim counter of incarnation `i` of a cluster name.
pub fn cluster_name_claim(o: &str, name: &ClusterName, i: i64) -> String {
    match i {
        0 => cluster_name(o, name),
        i => format!("{}/claim/{i}", cluster_name(o, name)),
    }
}

/// Once-guard: incarnation `i` of a cluster name was released.
pub fn cluster_name_released(o: &str, name: &ClusterName, i: i64) -> String {
    format!("{}/released/{i}", cluster_name(o, name))
}

/// Log of the organisation's member ids.
pub fn org_members(o: &str) -> String {
    format!("v1/org/{}/members", org(o))
}

/// A member's profile, and the prefix of their other keys.
pub fn member(o: &str, m: &MemberId) -> String {
    format!("v1/org/{}/member/{m}", org(o))
}

/// A member's invitation.
pub fn member_invite(o: &str, m: &MemberId) -> String {
    format!("{}/invite", member(o, m))
}

/// A member's deactivation marker.
pub fn member_deactivated(o: &str, m: &MemberId) -> String {
    format!("{}/deactivated", member(o, m))
}

/// Counter: the generation of a member's pin.
pub fn pin_gen(o: &str, m: &MemberId) -> String {
    format!("{}/pin/gen", member(o, m))
}

/// The pin of generation `g`.
pub fn pin(o: &str, m: &MemberId, g: i64) -> String {
    format!("{}/pin/{g}", member(o, m))
}

/// The claim counter of pin generation `g`.
pub fn pin_claim(o: &str, m: &MemberId, g: i64) -> String {
    format!("{}/claim", pin(o, m, g))
}

/// Once-guard: pin generation `g` was released.
pub fn pin_released(o: &str, m: &MemberId, g: i64) -> String {
    format!("{}/released", pin(o, m, g))
}

// ----- clusters ------------------------------------------------------------

/// The cluster record.
pub fn cluster(c: &ClusterId) -> String {
    format!("v1/cluster/{c}")
}

/// The cluster's tombstone.
pub fn cluster_deleted(c: &ClusterId) -> String {
    format!("v1/cluster/{c}/deleted")
}

/// Log of the cluster's credential rotations.
pub fn credentials(c: &ClusterId) -> String {
    format!("v1/cluster/{c}/credentials")
}

/// Marker: the agent has authenticated with credential slot `n`.
pub fn credential_used(c: &ClusterId, n: i64) -> String {
    format!("v1/cluster/{c}/credentials/{n}/used")
}

/// Counter: the cluster's revocation epoch.
pub fn epoch(c: &ClusterId) -> String {
    format!("v1/cluster/{c}/epoch")
}

/// The agent's last heartbeat.
pub fn heartbeat(c: &ClusterId) -> String {
    format!("v1/cluster/{c}/heartbeat")
}

// ----- grants --------------------------------------------------------------

/// Log of the grant ids of epoch `e`.
pub fn epoch_grants(c: &ClusterId, e: i64) -> String {
    format!("v1/cluster/{c}/e/{e}/grants")
}

/// Log: the ids of member `m`'s grants created in epoch `e` (its index of the epoch's log).
pub fn epoch_member_grants(c: &ClusterId, e: i64, m: &MemberId) -> String {
    format!("v1/cluster/{c}/e/{e}/member/{m}/grants")
}

/// Marker: every grant of epoch `e` is in its member's log (the epoch began
/// after the member logs existed).
pub fn epoch_member_indexed(c: &ClusterId, e: i64) -> String {
    format!("v1/cluster/{c}/e/{e}/member-indexed")
}

/// Counter: the generation of grant fingerprint `fp` in epoch `e`.
pub fn grant_gen(c: &ClusterId, e: i64, fp: &str) -> String {
    format!("v1/cluster/{c}/e/{e}/gen/{fp}")
}

/// The claim counter of generation `g` of fingerprint `fp` in epoch `e`.
pub fn grant_claim(c: &ClusterId, e: i64, fp: &str, g: i64) -> String {
    format!("v1/cluster/{c}/e/{e}/claim/{fp}/{g}")
}

/// Once-guard: generation `g` of fingerprint `fp` in epoch `e` was released.
pub fn grant_released(c: &ClusterId, e: i64, fp: &str, g: i64) -> String {
    format!("v1/cluster/{c}/e/{e}/released/{fp}/{g}")
}

/// The grant record.
pub fn grant(c: &ClusterId, g: &GrantId) -> String {
    format!("v1/cluster/{c}/grant/{g}")
}

/// What the agent last reported for the grant.
pub fn grant_observed(c: &ClusterId, g: &GrantId) -> String {
    format!("v1/cluster/{c}/grant/{g}/observed")
}

// ----- jobs and rates ------------------------------------------------------

/// Log of the cluster's jobs.
pub fn jobs(c: &ClusterId) -> String {
    format!("v1/cluster/{c}/jobs")
}

/// The agent's acknowledged job cursor.
pub fn jobs_acked(c: &ClusterId) -> String {
    format!("v1/cluster/{c}/jobs/acked")
}

/// Counter: tokens `m` minted in minute `window`.
pub fn mint_count(m: &MemberId, window: impl Display) -> String {
    format!("v1/rate/k8s-token/{m}/{window}")
}

/// The minutes that have a mint counter for `m`.
pub fn mint_windows(m: &MemberId) -> String {
    format!("v1/rate/k8s-token/{m}/windows")
}

// ----- identity providers and sign-in -------------------------------------

/// The digest that stands for an issuer URL in keys.
fn issuer(iss: &str) -> String {
    ids::digest_hex(&["issuer", iss])[..24].to_owned()
}

/// A provider's cached discovery document ([`crate::oidc`]).
pub fn provider_metadata(iss: &str) -> String {
    format!("v1/idp/{}/metadata", issuer(iss))
}

/// A provider's cached key set.
pub fn provider_jwks(iss: &str) -> String {
    format!("v1/idp/{}/jwks", issuer(iss))
}

/// When reading a provider's key set last failed with no copy to fall back on (a JSON number).
pub fn provider_jwks_failed(iss: &str) -> String {
    format!("v1/idp/{}/jwks-failed", issuer(iss))
}

/// Counter: reads of a provider's key set in refetch window `window` (the first wins).
pub fn provider_refetch(iss: &str, window: u64) -> String {
    format!("v1/idp/{}/refetch/{window}", issuer(iss))
}

/// A browser sign-in in progress, by the digest of its `state`.
pub fn sign_in(state_digest: &str) -> String {
    format!("v1/sign-in/{state_digest}")
}

/// Counter: a browser sign-in's callback was taken (the first wins).
pub fn sign_in_used(state_digest: &str) -> String {
    format!("v1/sign-in/{state_digest}/used")
}

/// Log of the sign-ins begun in minute `m` (digests of their `state`), for the sweep.
pub fn sign_ins_begun(m: u64) -> String {
    format!("v1/sign-in/minute/{m}")
}

/// The last minute whose abandoned sign-ins were swept (a JSON number).
pub fn sign_ins_swept() -> String {
    "v1/sign-in/swept".to_owned()
}

/// A session verified moments ago, by its cache key ([`crate::identity::VerifiedSessions`]).
pub fn verified_session(key: &str) -> String {
    format!("v1/session/{key}")
}

/// Log of the sessions verified in period `p` (their cache keys), for the sweep.
pub fn sessions_verified(p: u64) -> String {
    format!("v1/session/period/{p}")
}

/// The last period whose verified sessions were swept (a JSON number).
pub fn sessions_swept() -> String {
    "v1/session/swept".to_owned()
}
