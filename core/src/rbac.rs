//! What a grant means in Kubernetes RBAC, and the reconcile plan.
//!
//! A namespace-scoped grant becomes a `RoleBinding` in its namespace, a
//! cluster-scoped one a `ClusterRoleBinding`; the role reference is the
//! built-in ClusterRole of the role, the subject the member's Kubernetes user
//! name. Every binding Lanyard manages carries [`MANAGED_LABEL`] and its
//! cluster's [`CLUSTER_LABEL`], and is named from a hash of the grant id.
//!
//! [`plan`] is the reconciler's heart, a pure function of the desired
//! bindings and the managed bindings observed on the cluster: apply what is
//! missing or drifted, delete what no grant backs. The agent only executes it.

use serde::{Deserialize, Serialize};

use crate::ids::{self, ClusterId, GrantId};
use crate::model::{Email, Namespace, Role};

/// Label on every binding Lanyard manages.
pub const MANAGED_LABEL: &str = "lanyard.dev/managed";
/// Label naming the Lanyard cluster id the binding belongs to.
pub const CLUSTER_LABEL: &str = "lanyard.dev/cluster";
/// Label naming the grant a binding realises.
pub const GRANT_LABEL: &str = "lanyard.dev/grant";
/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "lanyard-agent";
/// Prefix of every Kubernetes user name Lanyard impersonates.
pub const USER_PREFIX: &str = "lanyard:";

/// The Kubernetes user name of a member: stable for as long as their email.
pub fn kube_user(email: &Email) -> String {
    format!("{USER_PREFIX}{email}")
}

/// A grant as the agent receives it (the agent API's access state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredGrant {
    /// The grant's id (the binding's name derives from it).
    pub id: GrantId,
    /// The member's Kubernetes user name ([`kube_user`]).
    pub user: String,
    /// The role, bound as the built-in ClusterRole of the same name.
    pub role: Role,
    /// The namespace of a namespace-scoped grant; none for a cluster-wide one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Namespace>,
}

/// Which binding object: a ClusterRoleBinding, or a RoleBinding in its
/// namespace. Ordered so that a plan is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindingRef {
    /// A ClusterRoleBinding of this name.
    Cluster {
        /// The object's name.
        name: String,
    },
    /// A RoleBinding of this name in `namespace`.
    Namespaced {
        /// The namespace the RoleBinding lives in.
        namespace: Namespace,
        /// The object's name.
        name: String,
    },
}

impl BindingRef {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            BindingRef::Cluster { name } | BindingRef::Namespaced { name, .. } => name,
        }
    }

    /// The RoleBinding's namespace; none for a ClusterRoleBinding.
    pub fn namespace(&self) -> Option<&Namespace> {
        match self {
            BindingRef::Cluster { .. } => None,
            BindingRef::Namespaced { namespace, .. } => Some(namespace),
        }
    }
}

/// A binding as Lanyard wants it on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredBinding {
    /// Which object.
    pub target: BindingRef,
    /// The grant it realises (its [`GRANT_LABEL`]).
    pub grant_id: GrantId,
    /// The ClusterRole bound.
    pub cluster_role: String,
    /// The one subject: a user.
    pub user: String,
}

/// A Lanyard-managed binding as observed on the cluster (only what matters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedBinding {
    /// Which object.
    pub target: BindingRef,
    /// The role it refers to: a ClusterRole's name, or `Kind/name` for any other kind.
    pub cluster_role: String,
    /// `(kind, name)` of each subject.
    pub subjects: Vec<(String, String)>,
    /// Its [`GRANT_LABEL`], if it has one.
    pub grant_label: Option<String>,
}

/// The binding name of a grant: `lanyard-` and 20 hex digits of a hash of the
/// cluster and grant ids.
pub fn binding_name(cluster_id: &ClusterId, grant_id: &GrantId) -> String {
    format!("lanyard-{}", &ids::digest_hex(&[cluster_id.as_str(), grant_id.as_str()])[..20])
}

/// The binding a grant becomes.
pub fn desired_binding(cluster_id: &ClusterId, grant: &DesiredGrant) -> DesiredBinding {
    let name = binding_name(cluster_id, &grant.id);
    let target = match &grant.namespace {
        Some(ns) => BindingRef::Namespaced { namespace: ns.clone(), name },
        None => BindingRef::Cluster { name },
    };
    DesiredBinding {
        target,
        grant_id: grant.id.clone(),
        cluster_role: grant.role.cluster_role().to_owned(),
        user: grant.user.clone(),
    }
}

/// One step of a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Server-side apply the binding (create it, or restore it).
    Apply(DesiredBinding),
    /// The role reference of an existing binding differs and cannot be
    /// changed in place: delete it, then apply.
    Replace(DesiredBinding),
    /// A managed binding no grant backs.
    Delete(BindingRef),
}

/// The plan that makes the observed managed bindings equal the desired ones.
/// Deletions come first, so a revoked grant loses access before anything else
/// happens. Bindings already as desired produce no action.
pub fn plan(desired: &[DesiredBinding], observed: &[ObservedBinding]) -> Vec<Action> {
    use std::collections::BTreeMap;
    let seen: BTreeMap<&BindingRef, &ObservedBinding> = observed.iter().map(|o| (&o.target, o)).collect();
    let wanted: BTreeMap<&BindingRef, &DesiredBinding> = desired.iter().map(|d| (&d.target, d)).collect();
    let mut actions: Vec<Action> =
        seen.keys().filter(|t| !wanted.contains_key(*t)).map(|t| Action::Delete((*t).clone())).collect();
    for (target, want) in wanted {
        match seen.get(target) {
            None => actions.push(Action::Apply(want.clone())),
            Some(have) if have.cluster_role != want.cluster_role => actions.push(Action::Replace(want.clone())),
            Some(have) => {
                let subjects_ok = have.subjects == [("User".to_owned(), want.user.clone())];
                if !subjects_ok || have.grant_label.as_deref() != Some(want.grant_id.as_str()) {
                    actions.push(Action::Apply(want.clone()));
                }
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: &str, role: Role, ns: Option<&str>) -> DesiredGrant {
        DesiredGrant {
            id: GrantId::derive(&[id]),
            user: kube_user(&Email::parse("dev@ex.io").unwrap()),
            role,
            namespace: ns.map(|n| Namespace::parse(n).unwrap()),
        }
    }

    fn cluster(name: &str) -> ClusterId {
        ClusterId::derive(&[name])
    }

    fn observed(d: &DesiredBinding) -> ObservedBinding {
        ObservedBinding {
            target: d.target.clone(),
            cluster_role: d.cluster_role.clone(),
            subjects: vec![("User".into(), d.user.clone())],
            grant_label: Some(d.grant_id.to_string()),
        }
    }

    #[test]
    fn grants_map_to_the_right_binding_for_every_role_and_scope() {
        for role in Role::ALL {
            let c = desired_binding(&cluster("c1"), &grant("g1", role, None));
            assert!(matches!(c.target, BindingRef::Cluster { .. }));
            assert_eq!(c.target.namespace(), None);
            assert_eq!(c.cluster_role, role.as_str());
            assert_eq!(c.user, "lanyard:dev@ex.io");
            let n = desired_binding(&cluster("c1"), &grant("g1", role, Some("team-a")));
            assert!(matches!(n.target, BindingRef::Namespaced { .. }));
            assert_eq!(n.target.namespace().map(Namespace::as_str), Some("team-a"));
            assert_eq!(n.cluster_role, role.as_str());
        }
        let g1 = GrantId::derive(&["g1"]);
        let name = binding_name(&cluster("c1"), &g1);
        assert!(name.starts_with("lanyard-") && name.len() == 28);
        assert_ne!(name, binding_name(&cluster("c2"), &g1));
    }

    #[test]
    fn plan_creates_missing_deletes_unbacked_and_leaves_good_alone() {
        let a = desired_binding(&cluster("c"), &grant("a", Role::View, Some("ns")));
        let b = desired_binding(&cluster("c"), &grant("b", Role::Edit, None));
        let stray = ObservedBinding {
            target: BindingRef::Namespaced { namespace: Namespace::parse("ns").unwrap(), name: "lanyard-old".into() },
            cluster_role: "view".into(),
            subjects: vec![("User".into(), "x".into())],
            grant_label: Some("gone".into()),
        };
        let actions = plan(&[a.clone(), b.clone()], &[observed(&a), stray.clone()]);
        assert_eq!(actions, vec![Action::Delete(stray.target.clone()), Action::Apply(b.clone())]);
        assert!(plan(&[a.clone(), b.clone()], &[observed(&a), observed(&b)]).is_empty(), "steady state");
        assert_eq!(plan(&[], &[observed(&a)]), vec![Action::Delete(a.target.clone())], "revoke-all");
    }

    #[test]
    fn plan_restores_drifted_bindings() {
        let a = desired_binding(&cluster("c"), &grant("a", Role::Admin, Some("ns")));
        let mut extra_subject = observed(&a);
        extra_subject.subjects.push(("User".into(), "intruder".into()));
        assert_eq!(plan(std::slice::from_ref(&a), &[extra_subject]), vec![Action::Apply(a.clone())]);
        let mut other_role = observed(&a);
        other_role.cluster_role = "cluster-admin".into();
        assert_eq!(plan(std::slice::from_ref(&a), &[other_role]), vec![Action::Replace(a.clone())]);
        let mut unlabelled = observed(&a);
        unlabelled.grant_label = None;
        assert_eq!(plan(std::slice::from_ref(&a), &[unlabelled]), vec![Action::Apply(a)]);
    }
}
