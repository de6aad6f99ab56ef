//! The domain records: what the store keeps (clusters, grants, members and
//! their pins, jobs, heartbeats) and what it hands back (a member as the
//! directory shows it, a grant with its status, the outcome of revoke-all).
//! Plain data; where each record lives in the key-value store is
//! [`crate::store`]'s business.

use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, GrantId, MemberId};
use crate::model::{ClusterKind, ClusterName, Email, GrantTerms, MemberStatus, Observed, OrgRole};

/// A registered cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Its id, derived from (organisation, name, incarnation).
    pub id: ClusterId,
    /// The organisation it belongs to.
    pub org: String,
    /// Its name, unique among the organisation's live clusters.
    pub name: ClusterName,
    /// Standard or sandbox.
    pub kind: ClusterKind,
    /// Where kubectl reaches its access proxy.
    pub proxy_url: String,
    /// The proxy's CA certificates (PEM), if not publicly trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// SHA-256 of the agent credential; the credential itself is never stored.
    pub agent_credential_hash: String,
    /// Unix seconds of registration.
    pub created_at: u64,
    /// Who registered it (audit).
    pub created_by: String,
}

impl ClusterRecord {
    /// The CA that kubeconfigs trust for the cluster's proxy: the one it was
    /// registered with, else the self-signed certificate its proxy published
    /// in the agent's last heartbeat `beat` (an admin's word beats an agent's).
    pub fn trusted_ca<'a>(&'a self, beat: Option<&'a Heartbeat>) -> Option<&'a str> {
        self.ca_pem.as_deref().or_else(|| beat.and_then(|b| b.proxy_ca_pem.as_deref()))
    }
}

/// Whether `pem` holds PEM-encoded certificates (a cheap shape check; TLS checks the rest).
pub fn is_pem_certificates(pem: &str) -> bool {
    pem.is_ascii() && pem.contains("-----BEGIN CERTIFICATE-----") && pem.contains("-----END CERTIFICATE-----")
}

/// The tombstone of a deleted cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDeletion {
    /// Who deleted it (audit).
    pub by: String,
    /// Unix seconds of the deletion.
    pub at: u64,
}

/// An agent credential issued by a rotation (slot 1 on; slot 0 is the
/// registration's, in the [`ClusterRecord`]). Written once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRotation {
    /// SHA-256 of the new credential; the credential itself is never stored.
    pub hash: String,
    /// Unix seconds of the rotation.
    pub created_at: u64,
    /// Who rotated it (audit).
    pub created_by: String,
    /// Every older credential is refused from this instant (unix seconds),
    /// and earlier once the agent authenticates with this or a newer one.
    pub previous_valid_until: u64,
}

/// The agent's last sign of life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Unix seconds of the heartbeat.
    pub at: u64,
    /// The agent's version, as it reported it (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The self-signed certificate its access proxy serves, as it published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_ca_pem: Option<String>,
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
    /// Its id, derived from (cluster, epoch, fingerprint, generation).
    pub id: GrantId,
    /// Cluster, member, role and scope (stored as their own fields).
    #[serde(flatten)]
    pub terms: GrantTerms,
    /// The revocation epoch it was created in: live only while that is the cluster's epoch.
    pub epoch: i64,
    /// The fingerprint of (member, role, scope) that makes exact duplicates one.
    pub fingerprint: String,
    /// The generation of that fingerprint this grant claimed.
    pub generation: i64,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// Who granted it (audit).
    pub created_by: String,
}

/// What changed, for the agent. Reconcile is level-triggered: a job only says
/// "look again"; its content is for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// A grant was created.
    GrantCreated {
        /// The grant.
        grant_id: GrantId,
        /// The epoch it was created in.
        epoch: i64,
        /// Unix seconds.
        at: u64,
    },
    /// A grant was deleted.
    GrantDeleted {
        /// The grant.
        grant_id: GrantId,
        /// The epoch it belonged to.
        epoch: i64,
        /// Unix seconds.
        at: u64,
    },
    /// Every grant of the cluster was revoked: `epoch` is the new one.
    RevokeAll {
        /// The new revocation epoch.
        epoch: i64,
        /// Unix seconds.
        at: u64,
    },
}

/// A member's own record, written when they sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProfile {
    /// The member's id.
    pub id: MemberId,
    /// Their email, from the session.
    pub email: Email,
    /// Their display name, from the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The issuer of the session that wrote this profile.
    pub issuer: String,
    /// The subject of that session.
    pub subject: String,
    /// Their organisation role, from the session's claims.
    pub role: OrgRole,
    /// Unix seconds of their first sign-in.
    pub joined_at: u64,
}

/// An admin's invitation of an email to the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The invited email.
    pub email: Email,
    /// Who invited them (audit).
    pub invited_by: String,
    /// Unix seconds.
    pub at: u64,
}

/// The marker of a deactivated member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivation {
    /// Who deactivated them (audit).
    pub by: String,
    /// Unix seconds.
    pub at: u64,
}

/// The sign-in identity a member is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The identity's issuer.
    pub issuer: String,
    /// The identity's subject at that issuer.
    pub subject: String,
    /// Unix seconds of the pinning sign-in.
    pub at: u64,
}

/// A member as the directory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Their id.
    pub id: MemberId,
    /// Their email.
    pub email: Email,
    /// Their display name, once they signed in.
    pub name: Option<String>,
    /// Invited, active or deactivated.
    pub status: MemberStatus,
    /// Their organisation role, once they signed in.
    pub role: Option<OrgRole>,
}

/// A live grant with what the agent last reported for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantWithStatus {
    /// The grant.
    pub grant: GrantRecord,
    /// The agent's last report on it, if any.
    pub observed: Option<Observed>,
}

/// The outcome of revoke-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// How many live grants it revoked.
    pub revoked: usize,
    /// The cluster's new revocation epoch.
    pub epoch: i64,
}

#[cfg(test)]
mod tests {
    use super::is_pem_certificates;

    #[test]
    fn pem_certificates_are_ascii_with_both_lines() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(is_pem_certificates(pem));
        assert!(!is_pem_certificates("-----BEGIN CERTIFICATE-----\nMIIB\n"));
        // RFC 7468 text is ASCII; the 16 KiB limit is then the same in bytes and characters.
        assert!(!is_pem_certificates(&format!("{pem}caf\u{e9}")));
    }
}
