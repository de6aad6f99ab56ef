//! Cluster Access: what the caller may do on a cluster (capabilities), the
//! members eligible for a grant, and grants: list, create, revoke one,
//! revoke all.

use super::{Cx, email_field, views};
use crate::authz::Action;
use crate::error::ApiError;
use crate::http::Response;
use crate::identity::Via;
use crate::ids::{ClusterId, GrantId};
use crate::model::{ClusterKind, GrantSpec, MemberStatus, Namespace, Role, Scope, ScopeKind};
use crate::records::GrantWithStatus;
use crate::wire::{self, CreateGrant};

/// Validate a grant request, naming the first bad field.
pub fn grant_spec(body: CreateGrant) -> Result<GrantSpec, ApiError> {
    let email = email_field(body.email.as_deref(), "email is required: the member's email address")?;
    let role_names = Role::ALL.map(Role::as_str).join(", ");
    let role = match body.role.as_deref() {
        None => return Err(ApiError::validation("role", format!("role is required: one of {role_names}"))),
        Some(r) => {
            Role::parse(r).ok_or_else(|| ApiError::validation("role", format!("role must be one of {role_names}")))?
        }
    };
    let scope = match body.scope.as_deref().map(ScopeKind::parse) {
        None => return Err(ApiError::validation("scope", "scope is required: cluster or namespace")),
        Some(None) => return Err(ApiError::validation("scope", "scope must be cluster or namespace")),
        Some(Some(ScopeKind::Cluster)) => {
            if body.namespace.is_some() {
                return Err(ApiError::validation(
                    "namespace",
                    "a cluster-scoped grant takes no namespace; use scope namespace to grant in one namespace",
                ));
            }
            Scope::Cluster
        }
        Some(Some(ScopeKind::Namespace)) => {
            let raw = body
                .namespace
                .ok_or_else(|| ApiError::validation("namespace", "a namespace-scoped grant must name the namespace"))?;
            let ns = Namespace::parse(&raw).map_err(|e| {
                ApiError::validation("namespace", format!("namespace is not a valid DNS-1123 label: it {e}"))
            })?;
            Scope::Namespace(ns)
        }
    };
    GrantSpec::new(email, role, scope).map_err(|e| ApiError::validation("role", e.to_string()))
}

impl Cx<'_> {
    pub(super) fn capabilities(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::ViewCapabilities)?;
        let supported = cluster.kind == ClusterKind::Standard;
        let online = self.agent_online(&cluster.id)?;
        let grants: Vec<wire::Grant> = if supported {
            let epoch = self.store.epoch(&cluster.id)?;
            self.caller_grants(&cluster.id, epoch)?.iter().map(|g| views::grant(g, online)).collect()
        } else {
            Vec::new()
        };
        let body = wire::Capabilities {
            cluster_id: cluster.id,
            cluster_name: cluster.name,
            enabled: true,
            supported,
            reason: (!supported).then(|| "sandbox clusters do not support Cluster Access".to_owned()),
            can_manage: self.caller.is_admin(),
            has_access: !grants.is_empty(),
            grants,
            agent_online: online,
            csrf_token: (self.caller.session.via == Via::Cookie).then(|| self.caller.session.csrf.clone()),
        };
        // It may carry the session's CSRF value.
        Ok(Response::json(200, &body).no_store())
    }

    /// The caller's own grants on the cluster that are live at `epoch`.
    pub(super) fn caller_grants(&self, cluster_id: &ClusterId, epoch: i64) -> Result<Vec<GrantWithStatus>, ApiError> {
        Ok(self.store.member_grants_at(cluster_id, epoch, &self.caller.member.id)?)
    }

    pub(super) fn eligible_members(&self) -> Result<Response, ApiError> {
        self.cluster()?;
        self.authorize(Action::ListEligibleMembers)?;
        let members = self
            .store
            .members(self.caller.org())?
            .iter()
            .filter(|m| m.status == MemberStatus::Active)
            .map(views::member)
            .collect();
        Ok(Response::json(200, &wire::MemberList { members }))
    }

    pub(super) fn list_grants(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::ListGrants)?;
        let online = self.agent_online(&cluster.id)?;
        let grants = self.store.grants(&cluster.id)?.iter().map(|g| views::grant(g, online)).collect();
        Ok(Response::json(200, &wire::GrantList { grants, agent_online: online }))
    }

    pub(super) fn create_grant(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::CreateGrant)?;
        if cluster.kind == ClusterKind::Sandbox {
            return Err(ApiError::cluster_access_unsupported());
        }
        let spec = grant_spec(self.req.json()?)?;
        let not_eligible = |why: &str| Err(ApiError::MemberNotEligible(format!("{} {why}", spec.email())));
        let member = match self.store.member_by_email(self.caller.org(), spec.email())? {
            None => {
                return not_eligible("is not a member of this organisation; they must sign in to Lanyard once first");
            }
            Some(m) => match m.status {
                MemberStatus::Active => m,
                MemberStatus::Invited => return not_eligible("has been invited but has not signed in yet"),
                MemberStatus::Deactivated => return not_eligible("is deactivated in this organisation"),
            },
        };
        let record = self.store.create_grant(&cluster.id, &spec, &member.id, self.caller.audit_name(), self.env.now)?;
        let online = self.agent_online(&cluster.id)?;
        Ok(Response::json(201, &views::grant(&GrantWithStatus { grant: record, observed: None }, online)))
    }

    pub(super) fn delete_grant(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::RevokeGrant)?;
        let grant_id =
            self.req.param("grant_id").and_then(GrantId::parse).ok_or_else(|| ApiError::not_found("grant"))?;
        self.store.delete_grant(&cluster.id, &grant_id, self.env.now)?;
        Ok(Response::no_content())
    }

    pub(super) fn revoke_all(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::RevokeAll)?;
        let r = self.store.revoke_all(&cluster.id, self.env.now)?;
        Ok(Response::json(200, &wire::RevokeAllResult { revoked: r.revoked, revocation_epoch: r.epoch }))
    }
}
