//! The Kubernetes side of the agent: observe Lanyard-managed bindings and
//! carry out the core's plan with server-side apply. It decides nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use lanyard_core::rbac::{
    BindingKind, BindingRef, CLUSTER_LABEL, DesiredBinding, FIELD_MANAGER, GRANT_LABEL, MANAGED_LABEL, ObservedBinding,
};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub struct Cluster {
    client: Client,
    cluster_id: String,
}

/// A Kubernetes error as its text, which is what the grant shows.
pub fn kube_error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

impl Cluster {
    pub fn new(client: Client, cluster_id: &str) -> Self {
        Cluster { client, cluster_id: cluster_id.to_owned() }
    }

    fn selector(&self) -> ListParams {
        ListParams::default().labels(&format!("{MANAGED_LABEL}=true,{CLUSTER_LABEL}={}", self.cluster_id))
    }

    /// Every binding this agent manages, cluster-wide.
    pub async fn observed(&self) -> Result<Vec<ObservedBinding>, kube::Error> {
        let crbs = Api::<ClusterRoleBinding>::all(self.client.clone()).list(&self.selector()).await?;
        let rbs = Api::<RoleBinding>::all(self.client.clone()).list(&self.selector()).await?;
        let mut out = Vec::with_capacity(crbs.items.len() + rbs.items.len());
        for b in crbs.items {
            out.push(observe(BindingKind::ClusterRoleBinding, &b.metadata, &b.role_ref, b.subjects.as_deref()));
        }
        for b in rbs.items {
            out.push(observe(BindingKind::RoleBinding, &b.metadata, &b.role_ref, b.subjects.as_deref()));
        }
        Ok(out)
    }

    fn metadata(&self, d: &DesiredBinding) -> ObjectMeta {
        let labels = BTreeMap::from([
            (MANAGED_LABEL.to_owned(), "true".to_owned()),
            (CLUSTER_LABEL.to_owned(), self.cluster_id.clone()),
            (GRANT_LABEL.to_owned(), d.grant_id.clone()),
        ]);
        ObjectMeta {
            name: Some(d.target.name.clone()),
            namespace: d.target.namespace.clone(),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }

    /// Server-side apply: creates the binding, or restores a drifted one.
    pub async fn apply(&self, d: &DesiredBinding) -> Result<(), kube::Error> {
        let role_ref =
            RoleRef { api_group: Some(RBAC_GROUP.into()), kind: "ClusterRole".into(), name: d.cluster_role.clone() };
        let subjects = Some(vec![Subject {
            api_group: Some(RBAC_GROUP.into()),
            kind: "User".into(),
            name: d.user.clone(),
            namespace: None,
        }]);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match (&d.target.kind, &d.target.namespace) {
            (BindingKind::ClusterRoleBinding, _) => {
                let obj = ClusterRoleBinding { metadata: self.metadata(d), role_ref, subjects };
                Api::<ClusterRoleBinding>::all(self.client.clone())
                    .patch(&d.target.name, &params, &Patch::Apply(&obj))
                    .await?;
            }
            (BindingKind::RoleBinding, Some(ns)) => {
                let obj = RoleBinding { metadata: self.metadata(d), role_ref, subjects };
                Api::<RoleBinding>::namespaced(self.client.clone(), ns)
                    .patch(&d.target.name, &params, &Patch::Apply(&obj))
                    .await?;
            }
            (BindingKind::RoleBinding, None) => unreachable!("a RoleBinding always has a namespace"),
        }
        Ok(())
    }

    /// Delete a binding; one already gone is fine.
    pub async fn delete(&self, target: &BindingRef) -> Result<(), kube::Error> {
        let dp = DeleteParams::default();
        let result = match (&target.kind, &target.namespace) {
            (BindingKind::ClusterRoleBinding, _) => {
                Api::<ClusterRoleBinding>::all(self.client.clone()).delete(&target.name, &dp).await.map(drop)
            }
            (BindingKind::RoleBinding, Some(ns)) => {
                Api::<RoleBinding>::namespaced(self.client.clone(), ns).delete(&target.name, &dp).await.map(drop)
            }
            (BindingKind::RoleBinding, None) => Ok(()),
        };
        match result {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other,
        }
    }
}

fn observe(kind: BindingKind, meta: &ObjectMeta, role_ref: &RoleRef, subjects: Option<&[Subject]>) -> ObservedBinding {
    ObservedBinding {
        target: BindingRef { kind, namespace: meta.namespace.clone(), name: meta.name.clone().unwrap_or_default() },
        cluster_role: if role_ref.kind == "ClusterRole" {
            role_ref.name.clone()
        } else {
            format!("{}/{}", role_ref.kind, role_ref.name)
        },
        subjects: subjects.unwrap_or_default().iter().map(|s| (s.kind.clone(), s.name.clone())).collect(),
        grant_label: meta.labels.as_ref().and_then(|l| l.get(GRANT_LABEL).cloned()),
    }
}
