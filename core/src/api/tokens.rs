//! kubectl access: cluster tokens (the exec plugin's ExecCredential) and
//! kubeconfigs. Both need a live grant on the cluster for every caller,
//! admins included: managing access is not kubectl access.

use super::Cx;
use crate::authz::Action;
use crate::error::ApiError;
use crate::http::Response;
use crate::ids::rfc3339;
use crate::model::ClusterKind;
use crate::records::{ClusterRecord, GrantWithStatus};
use crate::wire::ExecCredential;

/// Cluster tokens one member may mint per minute (the exec plugin caches them).
pub const TOKEN_MINTS_PER_MINUTE: i64 = 30;

impl Cx<'_> {
    /// The caller's own grants, live at `epoch`, on a cluster that supports
    /// access: minting and kubeconfigs need one, whatever its status.
    fn own_grants(&self, cluster: &ClusterRecord, epoch: i64) -> Result<Vec<GrantWithStatus>, ApiError> {
        if cluster.kind == ClusterKind::Sandbox {
            return Err(ApiError::cluster_access_unsupported());
        }
        let mine = self.caller_grants(&cluster.id, epoch)?;
        if mine.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "you have no access to cluster {}; ask an organisation admin to grant it: \
                 lanyard cluster access grant {} --email {} --role view --namespace <namespace>",
                cluster.name, cluster.name, self.caller.member.email
            )));
        }
        Ok(mine)
    }

    pub(super) fn k8s_token(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::MintToken)?;
        // The epoch is read once: the grant that justifies the token and the
        // token's `rev` come from the same epoch, so a revoke-all landing in
        // between yields a token that is already revoked, never a fresh one
        // minted on the strength of a grant that no longer exists.
        let epoch = self.store.epoch(&cluster.id)?;
        // Deletion revokes, tombstones, then revokes again: an epoch read after
        // the second revoke is seen with the tombstone, so no token outlives it.
        self.cluster()?;
        self.own_grants(&cluster, epoch)?;
        let keys = self.config.signing_keys()?;
        if !keys.published_in(&self.config.token_jwks()?) {
            return Err(ApiError::unavailable(
                "variable token_jwks does not publish the signing key (the first of token_signing_keys): \
                 its tokens would not verify; add its public key to token_jwks",
            ));
        }
        let lifetime = self.config.token_lifetime()?;
        self.store.limit_token_mints(&self.caller.member.id, TOKEN_MINTS_PER_MINUTE, self.env.now)?;
        let claims = crate::token::TokenClaims {
            rev: epoch,
            user: crate::rbac::kube_user(&self.caller.member.email),
            email: self.caller.member.email.to_string(),
        };
        let (token, expires_at) = keys.mint(&self.caller.member.id, &cluster.id, claims, lifetime, self.env.now)?;
        Ok(Response::json(200, &ExecCredential::new(token, rfc3339(expires_at))).no_store())
    }

    pub(super) fn kubeconfig(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::GetKubeconfig)?;
        let epoch = self.store.epoch(&cluster.id)?;
        let mine = self.own_grants(&cluster, epoch)?;
        // A cluster-wide grant needs no default namespace; otherwise the oldest namespace grant's.
        let namespace = if mine.iter().any(|g| g.grant.terms.scope.namespace().is_none()) {
            None
        } else {
            mine.iter()
                .min_by_key(|g| g.grant.created_at)
                .and_then(|g| g.grant.terms.scope.namespace())
                .map(|n| n.to_string())
        };
        let control_plane = match self.config.public_url()? {
            Some(url) => url,
            // Behind a TLS-terminating ingress the request says `http`, which would
            // send every kubectl's session in clear: outside the local run the
            // deployment must say how clients reach it.
            None if !self.config.development_mode()? => {
                return Err(ApiError::NotConfigured(
                    "this deployment does not know its public URL, so it cannot write a kubeconfig: set the public_url \
                 variable (SPIN_VARIABLE_PUBLIC_URL) to the control plane's https:// URL as clients reach it",
                ));
            }
            None => self.req.origin.clone().ok_or_else(|| {
                ApiError::unavailable(
                    "set the public_url variable: the request does not say how clients reach the control plane",
                )
            })?,
        };
        let beat = self.store.heartbeat(&cluster.id)?;
        let ca = cluster.trusted_ca(beat.as_ref());
        let text = crate::kubeconfig::render(&cluster, ca, &control_plane, namespace.as_deref());
        Ok(Response::text(200, "application/yaml", text))
    }
}
