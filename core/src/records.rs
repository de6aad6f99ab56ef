//! The domain records: what the store keeps (clusters, grants, members and
//! their pins, jobs, heartbeats) and what it hands back (a member as the
//! directory shows it, a grant with its status, the outcome of revoke-all).
//! Plain data; where each record lives in the key-value store is
//! [`crate::store`]'s business.

use serde::{Deserialize, Serialize};

use crate::model::{ClusterKind, Email, MemberStatus, Namespace, Observed, OrgRole, Role, Scope, ScopeKind};

/// A registered cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub id: String,
    pub org: String,
    pub name: String,
    pub kind: ClusterKind,
    pub proxy_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// SHA-256 of the agent credential; the credential itself is never stored.
    pub agent_credential_hash: String,
    pub created_at: u64,
    pub created_by: String,
}

/// The tombstone of a deleted cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDeletion {
    pub by: String,
    pub at: u64,
}

/// An agent credential issued by a rotation (slot 1 on; slot 0 is the
/// registration's, in the [`ClusterRecord`]). Written once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRotation {
    /// SHA-256 of the new credential; the credential itself is never stored.
    pub hash: String,
    pub created_at: u64,
    pub created_by: String,
    /// Every older credential is refused from this instant (unix seconds),
    /// and earlier once the agent authenticates with this or a newer one.
    pub previous_valid_until: u64,
}

/// The agent's last sign of life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Heartbeat {
    /// Whether this heartbeat is at most `offline_after` seconds old at `now`.
    pub fn is_fresh(&self, now: u64, offline_after: u64) -> bool {
        now.saturating_sub(self.at) <= offline_after
    }
}

/// A grant as stored. Immutable once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub id: String,
    pub cluster_id: String,
    pub member_id: String,
    pub email: Email,
    pub role: Role,
    pub scope: ScopeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Namespace>,
    pub epoch: i64,
    pub fingerprint: String,
    pub generation: i64,
    pub created_at: u64,
    pub created_by: String,
}

impl GrantRecord {
    pub fn scope(&self) -> Scope {
        match &self.namespace {
            Some(ns) => Scope::Namespace(ns.clone()),
            None => Scope::Cluster,
        }
    }
}

/// What changed, for the agent. Reconcile is level-triggered: a job only says
/// "look again"; its content is for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    GrantCreated { grant_id: String, epoch: i64, at: u64 },
    GrantDeleted { grant_id: String, epoch: i64, at: u64 },
    RevokeAll { epoch: i64, at: u64 },
}

/// A member's own record, written when they sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProfile {
    pub id: String,
    pub email: Email,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub role: OrgRole,
    pub joined_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub email: Email,
    pub invited_by: String,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivation {
    pub by: String,
    pub at: u64,
}

/// The sign-in identity a member is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub issuer: String,
    pub subject: String,
    pub at: u64,
}

/// A member as the directory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub email: Email,
    pub name: Option<String>,
    pub status: MemberStatus,
    pub role: Option<OrgRole>,
}

/// A live grant with what the agent last reported for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantWithStatus {
    pub grant: GrantRecord,
    pub observed: Option<Observed>,
}

/// The outcome of revoke-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub revoked: usize,
    pub epoch: i64,
}
