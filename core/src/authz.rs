//! Who may do what: decided here, once, for every endpoint.
//!
//! * Organisation admins manage access: list members and grants, create and
//!   revoke grants, register and delete clusters, rotate agent credentials,
//!   run the directory.
//! * Every active member may see capabilities and the organisation's clusters.
//! * Managing access is not kubectl access: tokens and kubeconfigs need a
//!   grant on the cluster for every caller, admins included.
//! * A cluster of another organisation does not exist for the caller (404,
//!   never 403, so ids cannot be probed).

use crate::error::ApiError;
use crate::identity::Session;
use crate::model::{MemberStatus, OrgRole};
use crate::records::{ClusterRecord, Member};

/// An authenticated, admitted caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified session.
    pub session: Session,
    /// The caller's directory entry.
    pub member: Member,
}

impl Caller {
    /// The caller's organisation.
    pub fn org(&self) -> &str {
        &self.session.identity.org
    }

    /// Whether the caller is an organisation admin.
    pub fn is_admin(&self) -> bool {
        self.session.identity.role == OrgRole::Admin
    }

    /// How the caller appears in audit fields (`created_by`).
    pub fn audit_name(&self) -> &str {
        self.session.identity.email.as_str()
    }
}

/// What a caller asks to do, each named for what it authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See what one may do on a cluster, and one's own grants there.
    ViewCapabilities,
    /// Mint a cluster token (a grant on the cluster is checked too).
    MintToken,
    /// Get a kubeconfig for a cluster (a grant on the cluster is checked too).
    GetKubeconfig,
    /// List the organisation's clusters.
    ListClusters,
    /// Register a cluster.
    RegisterCluster,
    /// Delete a cluster, with every grant and token of it.
    DeleteCluster,
    /// Rotate a cluster's agent credential.
    RotateAgentCredential,
    /// List the members a grant can be given to.
    ListEligibleMembers,
    /// List a cluster's grants.
    ListGrants,
    /// Grant a member a role on a cluster.
    CreateGrant,
    /// Revoke one grant.
    RevokeGrant,
    /// Revoke every grant and token of a cluster.
    RevokeAll,
    /// Read the organisation's directory.
    ReadDirectory,
    /// Invite, deactivate, reactivate or release members.
    ManageDirectory,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 14] = [
        Action::ViewCapabilities,
        Action::MintToken,
        Action::GetKubeconfig,
        Action::ListClusters,
        Action::RegisterCluster,
        Action::DeleteCluster,
        Action::RotateAgentCredential,
        Action::ListEligibleMembers,
        Action::ListGrants,
        Action::CreateGrant,
        Action::RevokeGrant,
        Action::RevokeAll,
        Action::ReadDirectory,
        Action::ManageDirectory,
    ];

    /// Whether only an organisation admin may take it.
    fn needs_admin(self) -> bool {
        match self {
            Action::ViewCapabilities | Action::MintToken | Action::GetKubeconfig | Action::ListClusters => false,
            Action::RegisterCluster
            | Action::DeleteCluster
            | Action::RotateAgentCredential
            | Action::ListEligibleMembers
            | Action::ListGrants
            | Action::CreateGrant
            | Action::RevokeGrant
            | Action::RevokeAll
            | Action::ReadDirectory
            | Action::ManageDirectory => true,
        }
    }
}

/// Whether an admitted member may act at all.
pub fn admit(member: &Member) -> Result<(), ApiError> {
    match member.status {
        MemberStatus::Active => Ok(()),
        MemberStatus::Deactivated => Err(ApiError::Forbidden(
            "your membership of this organisation is deactivated; ask an organisation admin".into(),
        )),
        // A member who signs in is active by definition; an invite alone never authenticates.
        MemberStatus::Invited => Err(ApiError::Forbidden("your invitation has not been accepted yet".into())),
    }
}

/// Whether the caller may take `action`.
pub fn authorize(caller: &Caller, action: Action) -> Result<(), ApiError> {
    admit(&caller.member)?;
    if action.needs_admin() && !caller.is_admin() {
        return Err(ApiError::Forbidden("this needs an organisation admin".into()));
    }
    Ok(())
}

/// The cluster as the caller may see it: another organisation's is not found.
pub fn visible_cluster(caller: &Caller, cluster: Option<ClusterRecord>) -> Result<ClusterRecord, ApiError> {
    cluster.filter(|c| c.org == caller.org()).ok_or_else(|| ApiError::not_found("cluster"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, Via};
    use crate::ids::{ClusterId, MemberId};
    use crate::model::{ClusterKind, ClusterName, Email};

    fn caller(role: OrgRole, status: MemberStatus) -> Caller {
        let email = Email::parse("a@ex.io").unwrap();
        Caller {
            session: Session {
                identity: Identity {
                    issuer: "i".into(),
                    subject: "s".into(),
                    email: email.clone(),
                    name: None,
                    org: "acme".into(),
                    role,
                    expires_at: u64::MAX,
                },
                via: Via::Bearer,
                csrf: String::new(),
                unremembered: None,
            },
            member: Member { id: MemberId::derive(&["m"]), email, name: None, status, role: Some(role) },
        }
    }

    #[test]
    fn the_whole_matrix() {
        for action in Action::ALL {
            let admin = authorize(&caller(OrgRole::Admin, MemberStatus::Active), action);
            assert!(admin.is_ok(), "admin {action:?}");
            let member = authorize(&caller(OrgRole::Member, MemberStatus::Active), action);
            let open = matches!(
                action,
                Action::ViewCapabilities | Action::MintToken | Action::GetKubeconfig | Action::ListClusters
            );
            assert_eq!(member.is_ok(), open, "member {action:?}");
            if let Err(e) = member {
                assert_eq!(e.status(), 403);
            }
            for role in [OrgRole::Admin, OrgRole::Member] {
                let err = authorize(&caller(role, MemberStatus::Deactivated), action).unwrap_err();
                assert_eq!(err.status(), 403, "deactivated {role:?} {action:?}");
            }
        }
    }

    #[test]
    fn foreign_clusters_are_not_found() {
        let c = caller(OrgRole::Admin, MemberStatus::Active);
        let cluster = |org: &str| ClusterRecord {
            id: ClusterId::derive(&["c"]),
            org: org.into(),
            name: ClusterName::parse("n").unwrap(),
            kind: ClusterKind::Standard,
            proxy_url: "https://p".into(),
            ca_pem: None,
            agent_credential_hash: String::new(),
            created_at: 0,
            created_by: String::new(),
        };
        assert!(visible_cluster(&c, Some(cluster("acme"))).is_ok());
        assert_eq!(visible_cluster(&c, Some(cluster("other"))).unwrap_err().status(), 404);
        assert_eq!(visible_cluster(&c, None).unwrap_err().status(), 404);
    }
}
