//! The Kubernetes side of the agent: observe Lanyard-managed bindings and
//! carry out the core's plan with server-side apply. It decides nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use lanyard_core::ids::ClusterId;
use lanyard_core::model::Namespace;
use lanyard_core::rbac::{
    BindingRef, CLUSTER_LABEL, DesiredBinding, FIELD_MANAGER, GRANT_LABEL, MANAGED_LABEL, ObservedBinding,
};
use tracing::warn;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The cluster's API, for the bindings of one Lanyard cluster.
pub struct Cluster {
    client: Client,
    cluster_id: ClusterId,
}

/// A Kubernetes error as its text, which is what the grant shows.
pub fn kube_error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

impl Cluster {
    /// The bindings of `cluster_id`, through `client`.
    pub fn new(client: Client, cluster_id: &ClusterId) -> Self {
        Cluster { client, cluster_id: cluster_id.clone() }
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
            let name = b.metadata.name.clone().unwrap_or_default();
            out.push(observe(BindingRef::Cluster { name }, &b.metadata, &b.role_ref, b.subjects.as_deref()));
        }
        for b in rbs.items {
            let name = b.metadata.name.clone().unwrap_or_default();
            // The apiserver always names a RoleBinding's namespace, and it is a DNS-1123 label.
            match b.metadata.namespace.as_deref().map(Namespace::parse) {
                Some(Ok(namespace)) => {
                    let target = BindingRef::Namespaced { namespace, name };
                    out.push(observe(target, &b.metadata, &b.role_ref, b.subjects.as_deref()));
                }
                _ => warn!(binding = %name, "skipping a RoleBinding without a valid namespace"),
            }
        }
        Ok(out)
    }

    fn metadata(&self, d: &DesiredBinding) -> ObjectMeta {
        let labels = BTreeMap::from([
            (MANAGED_LABEL.to_owned(), "true".to_owned()),
            (CLUSTER_LABEL.to_owned(), self.cluster_id.to_string()),
            (GRANT_LABEL.to_owned(), d.grant_id.to_string()),
        ]);
        ObjectMeta {
            name: Some(d.target.name().to_owned()),
            namespace: d.target.namespace().map(ToString::to_string),
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
        match &d.target {
            BindingRef::Cluster { name } => {
                let obj = ClusterRoleBinding { metadata: self.metadata(d), role_ref, subjects };
                Api::<ClusterRoleBinding>::all(self.client.clone()).patch(name, &params, &Patch::Apply(&obj)).await?;
            }
            BindingRef::Namespaced { namespace, name } => {
                let obj = RoleBinding { metadata: self.metadata(d), role_ref, subjects };
                Api::<RoleBinding>::namespaced(self.client.clone(), namespace.as_str())
                    .patch(name, &params, &Patch::Apply(&obj))
                    .await?;
            }
        }
        Ok(())
    }

    /// Delete a binding; one already gone is fine.
    pub async fn delete(&self, target: &BindingRef) -> Result<(), kube::Error> {
        let dp = DeleteParams::default();
        let result = match target {
            BindingRef::Cluster { name } => {
                Api::<ClusterRoleBinding>::all(self.client.clone()).delete(name, &dp).await.map(drop)
            }
            BindingRef::Namespaced { namespace, name } => {
                Api::<RoleBinding>::namespaced(self.client.clone(), namespace.as_str())
                    .delete(name, &dp)
                    .await
                    .map(drop)
            }
        };
        match result {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other,
        }
    }
}

fn observe(target: BindingRef, meta: &ObjectMeta, role_ref: &RoleRef, subjects: Option<&[Subject]>) -> ObservedBinding {
    ObservedBinding {
        target,
        cluster_role: if role_ref.kind == "ClusterRole" {
            role_ref.name.clone()
        } else {
            format!("{}/{}", role_ref.kind, role_ref.name)
        },
        subjects: subjects.unwrap_or_default().iter().map(|s| (s.kind.clone(), s.name.clone())).collect(),
        grant_label: meta.labels.as_ref().and_then(|l| l.get(GRANT_LABEL).cloned()),
    }
}
