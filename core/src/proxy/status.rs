//! Why the proxy refuses a request, as the Kubernetes `Status` object
//! kubectl prints (`Error from server (Forbidden): …`).

use serde::Serialize;

use crate::token::TokenError;

/// A refusal of the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The proxy has not yet learnt the cluster's access state from the control plane.
    #[error("the access proxy has not yet reached the Lanyard control plane, so it cannot check anyone's access yet")]
    NotSynced,
    /// A request method the Kubernetes API does not serve.
    #[error("the Kubernetes API does not serve this method")]
    Method,
    /// No `Authorization: Bearer` token.
    #[error("no bearer token: use a kubeconfig from `lanyard cluster kubeconfig add`")]
    NoToken,
    /// The token does not verify (expired, revoked, another cluster, not ours).
    #[error("the Lanyard token is not valid here: {0}")]
    Token(TokenError),
    /// The token verifies, but its member holds no live grant on this cluster.
    #[error("the Lanyard token's member holds no grant on this cluster any more")]
    NoGrant,
    /// The proxy has not heard from the control plane for too long to know about revocations.
    #[error(
        "the access proxy has not reached the Lanyard control plane for {age_seconds} s (limit \
         {limit_seconds} s), so it refuses every request until it does"
    )]
    Stale {
        /// How old the last access state is.
        age_seconds: u64,
        /// The staleness limit.
        limit_seconds: u64,
    },
    /// The client tried to choose whom it acts as.
    #[error("impersonation headers ({0}) are not allowed through the Lanyard access proxy: you act as yourself")]
    Impersonation(String),
}

impl Refusal {
    /// The HTTP status: `401` for anything about the token (the exec plugin
    /// then fetches a fresh one), `403` for a request that asks for more.
    pub fn code(&self) -> u16 {
        match self {
            Refusal::NoToken | Refusal::Token(_) | Refusal::NoGrant | Refusal::Stale { .. } | Refusal::NotSynced => 401,
            Refusal::Impersonation(_) => 403,
            Refusal::Method => 405,
        }
    }

    /// The `Status` JSON body.
    pub fn body(&self) -> Vec<u8> {
        let code = self.code();
        let reason = match code {
            401 => "Unauthorized",
            405 => "MethodNotAllowed",
            _ => "Forbidden",
        };
        failure_body(code, reason, self.to_string())
    }
}

/// The body of a failure `Status` with `code`, `reason` and `message`: what
/// the proxy answers whenever it answers itself (a refusal, or an apiserver
/// it cannot reach).
pub fn failure_body(code: u16, reason: &'static str, message: String) -> Vec<u8> {
    let status =
        Status { kind: "Status", api_version: "v1", metadata: Empty {}, status: "Failure", message, reason, code };
    serde_json::to_vec(&status).unwrap_or_default()
}

/// `metav1.Status`, as much of it as a refusal needs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    message: String,
    reason: &'static str,
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_status_objects_kubectl_prints() {
        for (refusal, code, reason) in [
            (Refusal::NoToken, 401, "Unauthorized"),
            (Refusal::Token(TokenError::Revoked), 401, "Unauthorized"),
            (Refusal::NoGrant, 401, "Unauthorized"),
            (Refusal::Stale { age_seconds: 99, limit_seconds: 60 }, 401, "Unauthorized"),
            (Refusal::NotSynced, 401, "Unauthorized"),
            (Refusal::Method, 405, "MethodNotAllowed"),
            (Refusal::Impersonation("impersonate-user".into()), 403, "Forbidden"),
        ] {
            let body: serde_json::Value = serde_json::from_slice(&refusal.body()).unwrap();
            assert_eq!(refusal.code(), code);
            assert_eq!((body["kind"].as_str(), body["apiVersion"].as_str()), (Some("Status"), Some("v1")));
            assert_eq!((body["code"].as_u64(), body["reason"].as_str()), (Some(u64::from(code)), Some(reason)));
            assert_eq!(body["message"].as_str(), Some(refusal.to_string().as_str()));
        }
    }
}
