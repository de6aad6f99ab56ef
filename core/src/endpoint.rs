//! Every endpoint, described once.
//!
//! [`ENDPOINTS`] says, for each [`Endpoint`], which component serves it, its
//! Spin routes and the methods each route serves, whether the access gateway
//! switch turns it off, and how its caller authenticates (which also sets the
//! body limit). The request pipeline ([`crate::api`], agent API included)
//! takes its rules from here, and `tests/api/tests/endpoints.rs` checks
//! `spin.toml`, the component crates and `openapi.yaml` against it: adding an
//! endpoint is one entry here, its handler, and its component.
//!
//! This module also holds what every pipeline shares: the [`Env`] a component
//! gets from its host (store, variables, time, randomness), and the method check.

use crate::clock::Clock;
use crate::config::Variables;
use crate::error::ApiError;
use crate::http::{MAX_AGENT_BODY_BYTES, MAX_BODY_BYTES, Method, Request};
use crate::kv::KeyValue;
use crate::outbound::Outbound;
use crate::random::Random;

/// What a component gets from its host.
pub struct Env<'a> {
    /// The key-value store (Spin's `default` store).
    pub kv: &'a dyn KeyValue,
    /// The component's variables.
    pub vars: &'a dyn Variables,
    /// Unix seconds.
    pub now: u64,
    /// For what waits (a store claim's patience).
    pub clock: &'a dyn Clock,
    /// For the secrets it makes (agent credentials, sign-in state).
    pub random: &'a dyn Random,
    /// Outbound HTTP, to the identity provider only.
    pub outbound: &'a dyn Outbound,
}

/// The endpoints, one per component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// What the caller may do on a cluster.
    Capabilities,
    /// Members eligible for a grant.
    Members,
    /// A cluster's grants: list, create.
    Grants,
    /// One grant: delete it.
    Grant,
    /// Revoke every grant and token of a cluster.
    RevokeAll,
    /// The organisation's clusters: list, register.
    Clusters,
    /// One cluster: delete it.
    Cluster,
    /// A cluster's agent credential: rotate it.
    AgentCredential,
    /// The organisation's directory.
    Directory,
    /// Mint a cluster token.
    K8sToken,
    /// The caller's kubeconfig.
    Kubeconfig,
    /// The public keys that verify cluster tokens.
    Jwks,
    /// The agent's heartbeat.
    AgentHeartbeat,
    /// The agent's job lease and acknowledgement.
    AgentJobs,
    /// The agent's reconcile results.
    AgentReports,
    /// The cluster's access state, for the agent.
    AgentState,
    /// Who the caller is.
    Me,
    /// The Access view's pages and assets.
    Portal,
    /// Where the CLI signs in (public).
    LoginConfig,
    /// Browser sign-in: off to the identity provider.
    AuthLogin,
    /// Browser sign-in: back from the identity provider.
    AuthCallback,
    /// Browser sign-out.
    AuthLogout,
    /// Every other path.
    NotFound,
}

/// How an endpoint's caller proves who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// An SSO session (bearer or cookie); bodies up to [`MAX_BODY_BYTES`].
    Session,
    /// The cluster's agent credential; bodies up to [`MAX_AGENT_BODY_BYTES`].
    Agent,
    /// Nobody: a public answer.
    Public,
}

/// One Spin route of an endpoint and the methods it serves (`HEAD` is served
/// wherever `GET` is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The route as `spin.toml` writes it (`:name` parameters, `/...` wildcard).
    pub path: &'static str,
    /// The methods.
    pub methods: &'static [Method],
}

/// Everything the pipeline and the manifest need to know about an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its component in `spin.toml` (and crate `functions/<component>`).
    pub component: &'static str,
    /// Its routes.
    pub routes: &'static [Route],
    /// Whether it answers `404 access_unavailable` while the gateway is off.
    pub gated: bool,
    /// How its caller authenticates.
    pub auth: Auth,
}

const fn route(path: &'static str, methods: &'static [Method]) -> Route {
    Route { path, methods }
}

const fn spec(
    endpoint: Endpoint,
    component: &'static str,
    routes: &'static [Route],
    gated: bool,
    auth: Auth,
) -> EndpointSpec {
    EndpointSpec { endpoint, component, routes, gated, auth }
}

/// The two routes of a Cluster Access endpoint: the web app's
/// `/org/clusters/:cluster_id/access/<tail>` and the API's
/// `/api/v1/clusters/:cluster_id/access/<tail>`, serving the same methods.
macro_rules! access_routes {
    ($tail:literal, $methods:expr) => {
        &[
            route(concat!("/org/clusters/:cluster_id/access/", $tail), $methods),
            route(concat!("/api/v1/clusters/:cluster_id/access/", $tail), $methods),
        ]
    };
}

const GATED: bool = true;
const ALWAYS: bool = false;

/// Every endpoint: the one table.
pub const ENDPOINTS: &[EndpointSpec] = &[
    spec(Endpoint::Capabilities, "capabilities", access_routes!("capabilities", &[Method::Get]), GATED, Auth::Session),
    spec(Endpoint::Members, "members", access_routes!("members", &[Method::Get]), GATED, Auth::Session),
    spec(Endpoint::Grants, "grants", access_routes!("grants", &[Method::Get, Method::Post]), GATED, Auth::Session),
    spec(Endpoint::Grant, "grant", access_routes!("grants/:grant_id", &[Method::Delete]), GATED, Auth::Session),
    spec(Endpoint::RevokeAll, "revoke-all", access_routes!("revoke-all", &[Method::Post]), GATED, Auth::Session),
    spec(
        Endpoint::Clusters,
        "clusters",
        &[route("/api/v1/clusters", &[Method::Get, Method::Post])],
        ALWAYS,
        Auth::Session,
    ),
    spec(
        Endpoint::Cluster,
        "cluster",
        &[route("/api/v1/clusters/:cluster_id", &[Method::Delete])],
        ALWAYS,
        Auth::Session,
    ),
    spec(
        Endpoint::AgentCredential,
        "agent-credential",
        &[route("/api/v1/clusters/:cluster_id/agent-credential", &[Method::Post])],
        ALWAYS,
        Auth::Session,
    ),
    spec(
        Endpoint::Directory,
        "directory",
        &[
            route("/api/v1/members", &[Method::Get, Method::Post]),
            route("/api/v1/members/:member_id", &[Method::Patch]),
        ],
        ALWAYS,
        Auth::Session,
    ),
    spec(
        Endpoint::AgentHeartbeat,
        "agent-heartbeat",
        &[route("/agent/v1/clusters/:cluster_id/heartbeat", &[Method::Post])],
        ALWAYS,
        Auth::Agent,
    ),
    spec(
        Endpoint::AgentJobs,
        "agent-jobs",
        &[
            route("/agent/v1/clusters/:cluster_id/jobs/lease", &[Method::Post]),
            route("/agent/v1/clusters/:cluster_id/jobs/ack", &[Method::Post]),
        ],
        ALWAYS,
        Auth::Agent,
    ),
    spec(
        Endpoint::AgentReports,
        "agent-reports",
        &[route("/agent/v1/clusters/:cluster_id/reports", &[Method::Post])],
        ALWAYS,
        Auth::Agent,
    ),
    spec(
        Endpoint::AgentState,
        "agent-state",
        &[route("/agent/v1/clusters/:cluster_id/state", &[Method::Get])],
        ALWAYS,
        Auth::Agent,
    ),
    spec(
        Endpoint::K8sToken,
        "k8s-token",
        &[route("/api/v1/clusters/:cluster_id/k8s-token", &[Method::Post])],
        GATED,
        Auth::Session,
    ),
    spec(
        Endpoint::Kubeconfig,
        "kubeconfig",
        &[
            route("/api/v1/clusters/:cluster_id/kubeconfig", &[Method::Get, Method::Post]),
            route("/org/clusters/:cluster_id/access/kubeconfig", &[Method::Get, Method::Post]),
        ],
        GATED,
        Auth::Session,
    ),
    spec(Endpoint::Jwks, "jwks", &[route("/.well-known/jwks.json", &[Method::Get])], GATED, Auth::Public),
    spec(
        Endpoint::Portal,
        "portal",
        &[
            route("/clusters", &[Method::Get]),
            route("/clusters/:cluster_id/access", &[Method::Get]),
            route("/assets/:file", &[Method::Get]),
        ],
        ALWAYS,
        Auth::Public,
    ),
    spec(Endpoint::Me, "me", &[route("/api/v1/me", &[Method::Get])], ALWAYS, Auth::Session),
    spec(Endpoint::LoginConfig, "login-config", &[route("/api/v1/login", &[Method::Get])], ALWAYS, Auth::Public),
    spec(Endpoint::AuthLogin, "auth-login", &[route("/auth/login", &[Method::Get])], ALWAYS, Auth::Public),
    spec(Endpoint::AuthCallback, "auth-callback", &[route("/auth/callback", &[Method::Get])], ALWAYS, Auth::Public),
    spec(Endpoint::AuthLogout, "auth-logout", &[route("/auth/logout", &[Method::Get])], ALWAYS, Auth::Public),
    spec(Endpoint::NotFound, "not-found", &[route("/...", &[])], ALWAYS, Auth::Public),
];

impl Endpoint {
    /// This endpoint's entry in [`ENDPOINTS`].
    pub fn spec(self) -> &'static EndpointSpec {
        // Every variant has exactly one entry (a unit test checks it).
        ENDPOINTS.iter().find(|s| s.endpoint == self).unwrap_or(&ENDPOINTS[ENDPOINTS.len() - 1])
    }

    /// The largest request body this endpoint reads.
    pub fn body_limit(self) -> usize {
        if self.spec().auth == Auth::Agent { MAX_AGENT_BODY_BYTES } else { MAX_BODY_BYTES }
    }

    /// The methods the request's route serves: the route the host matched,
    /// or none if it is not one of this endpoint's.
    pub fn methods(self, req: &Request) -> &'static [Method] {
        let matched = req.route.as_deref();
        self.spec().routes.iter().find(|r| Some(r.path) == matched).map_or(&[], |r| r.methods)
    }
}

/// `405` unless the request's route serves its method (`HEAD` as `GET`).
pub fn check_method(endpoint: Endpoint, req: &Request) -> Result<(), ApiError> {
    let allowed = endpoint.methods(req);
    if allowed.contains(&req.method.served_as()) { Ok(()) } else { Err(ApiError::MethodNotAllowed(allowed)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Endpoint; 23] = [
        Endpoint::Capabilities,
        Endpoint::Members,
        Endpoint::Grants,
        Endpoint::Grant,
        Endpoint::RevokeAll,
        Endpoint::Clusters,
        Endpoint::Cluster,
        Endpoint::AgentCredential,
        Endpoint::Directory,
        Endpoint::K8sToken,
        Endpoint::Kubeconfig,
        Endpoint::Jwks,
        Endpoint::AgentHeartbeat,
        Endpoint::AgentJobs,
        Endpoint::AgentReports,
        Endpoint::AgentState,
        Endpoint::Me,
        Endpoint::Portal,
        Endpoint::LoginConfig,
        Endpoint::AuthLogin,
        Endpoint::AuthCallback,
        Endpoint::AuthLogout,
        Endpoint::NotFound,
    ];

    #[test]
    fn every_endpoint_has_exactly_one_entry_and_every_route_one_endpoint() {
        assert_eq!(ENDPOINTS.len(), ALL.len());
        for e in ALL {
            assert_eq!(ENDPOINTS.iter().filter(|s| s.endpoint == e).count(), 1, "{e:?}");
            assert_eq!(e.spec().endpoint, e);
        }
        let mut paths: Vec<&str> = ENDPOINTS.iter().flat_map(|s| s.routes.iter().map(|r| r.path)).collect();
        let n = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), n, "a route belongs to one endpoint");
    }

    #[test]
    fn methods_follow_the_matched_route() {
        let on = |route: &str, method: Method| Request::new(method, "/").on_route(route, &[]);
        let dir = Endpoint::Directory;
        assert!(check_method(dir, &on("/api/v1/members", Method::Post)).is_ok());
        assert!(check_method(dir, &on("/api/v1/members/:member_id", Method::Patch)).is_ok());
        assert!(check_method(dir, &on("/api/v1/members", Method::Patch)).is_err());
        assert!(check_method(dir, &on("/api/v1/clusters", Method::Get)).is_err(), "not this endpoint's route");
        assert!(
            check_method(Endpoint::Grants, &on("/api/v1/clusters/:cluster_id/access/grants", Method::Head)).is_ok()
        );
        assert!(check_method(Endpoint::Grants, &Request::new(Method::Get, "/")).is_err(), "no matched route: refused");
    }
}
