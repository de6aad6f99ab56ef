//! The endpoints, as functions from a request and an environment to a
//! response. The request pipeline is the same for all of them and lives here
//! once, with the rules of each endpoint from the table in
//! [`crate::endpoint`]:
//!
//! 1. access endpoints answer `404 access_unavailable` while the gateway is off;
//! 2. the method must be one the endpoint's route serves (`405` otherwise);
//! 3. the session is verified, the caller admitted to the directory, and a
//!    cookie-authenticated write must carry the CSRF header;
//! 4. the cluster must exist in the caller's organisation (`404` otherwise);
//! 5. [`authz::authorize`] decides;
//! 6. only then is the body read and validated, and the store touched.
//!
//! The agent API authenticates by the cluster's agent credential instead
//! ([`agent`]), and does so from the request head, before the body is read
//! ([`admit`]).
//!
//! The handlers are by area, as `tests/api/tests/` is: [`access`] (grants,
//! capabilities, revoke-all), [`tokens`] (cluster tokens, kubeconfigs),
//! [`clusters`], [`directory`] and [`agent`]; [`views`] turns records into
//! wire types.

use crate::authz::{self, Action, Caller};
use crate::config::Config;
use crate::endpoint::{Endpoint, Env, check_method};
use crate::error::ApiError;
use crate::http::{Method, Request, Response};
use crate::identity;
use crate::identity::VerifiedSessions as _;
use crate::ids::ClusterId;
use crate::model::Email;
use crate::oidc::Providers;
use crate::records::ClusterRecord;
use crate::store::Store;

pub mod access;
pub mod agent;
pub mod clusters;
pub mod directory;
pub mod sign_in;
pub mod tokens;
pub mod views;

/// An endpoint and the one function that serves it. [`handler`] is a
/// `const fn`: a component names its handler in a constant
/// (`const { lanyard_core::handler(Endpoint::Grants) }`), so the component
/// references only that endpoint's function and link-time optimisation
/// leaves every other endpoint's code out of its `.wasm`. [`admit`],
/// [`handle`] and [`serve`] choose at run time (the tests, the fuzz targets).
#[derive(Debug, Clone, Copy)]
pub struct Handler {
    endpoint: Endpoint,
    /// What the request head decides: the agent's cluster, or nothing yet.
    head: fn(Endpoint, &Request, &Env) -> Result<Option<ClusterRecord>, ApiError>,
    /// The pipeline of the endpoint's kind, which then runs `work`: a
    /// pointer too, so an agent component does not link the session
    /// pipeline, nor a session component the agent's.
    pipeline: Pipeline,
    work: Work,
}

/// A kind's pipeline: the gateway switch, the method, authentication.
type Pipeline = fn(Endpoint, Work, Option<ClusterRecord>, &Request, &Env) -> Result<Response, ApiError>;

/// What serves an endpoint, after the pipeline its kind shares.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// A session endpoint: runs once the caller is authenticated and admitted.
    Session(fn(&Cx<'_>) -> Result<Response, ApiError>),
    /// The JWKS and the sign-in flow: before any session.
    Public(fn(Endpoint, &Request, &Env, &Config) -> Result<Response, ApiError>),
    /// An agent endpoint, for the cluster whose credential the head carries.
    Agent(fn(&Request, &Env, &Store, &ClusterRecord) -> Result<Response, ApiError>),
    /// No endpoint here (the not-found route; the portal is served elsewhere).
    NotFound,
}

impl Handler {
    /// The endpoint it serves.
    pub const fn endpoint(self) -> Endpoint {
        self.endpoint
    }
}

/// A session endpoint's work: `Cx`'s method, as a function of any context
/// (the method alone is tied to one context lifetime).
macro_rules! session {
    ($method:ident) => {{
        fn work(cx: &Cx<'_>) -> Result<Response, ApiError> {
            cx.$method()
        }
        Work::Session(work)
    }};
}

/// The handler of `endpoint` (see [`Handler`]).
pub const fn handler(endpoint: Endpoint) -> Handler {
    let work: Work = match endpoint {
        Endpoint::Capabilities => session!(capabilities),
        Endpoint::Members => session!(eligible_members),
        Endpoint::Grants => session!(grants),
        Endpoint::Grant => session!(delete_grant),
        Endpoint::RevokeAll => session!(revoke_all),
        Endpoint::Clusters => session!(clusters),
        Endpoint::Cluster => session!(delete_cluster),
        Endpoint::AgentCredential => session!(rotate_agent_credential),
        Endpoint::Directory => session!(members),
        Endpoint::Me => session!(me),
        Endpoint::K8sToken => session!(k8s_token),
        Endpoint::Kubeconfig => session!(kubeconfig),
        Endpoint::Jwks => Work::Public(jwks),
        Endpoint::LoginConfig | Endpoint::AuthLogin | Endpoint::AuthCallback | Endpoint::AuthLogout => {
            Work::Public(sign_in::serve)
        }
        Endpoint::AgentHeartbeat => Work::Agent(agent::heartbeat),
        Endpoint::AgentJobs => Work::Agent(agent::jobs),
        Endpoint::AgentReports => Work::Agent(agent::reports),
        Endpoint::AgentState => Work::Agent(agent::state),
        Endpoint::Portal | Endpoint::NotFound => Work::NotFound,
    };
    let (head, pipeline): (fn(Endpoint, &Request, &Env) -> _, Pipeline) = match work {
        Work::Session(_) => (no_head_decision, session_pipeline),
        Work::Public(_) => (no_head_decision, public_pipeline),
        Work::Agent(_) => (agent_head, agent_pipeline),
        Work::NotFound => (no_head_decision, not_found),
    };
    Handler { endpoint, head, pipeline, work }
}

/// What the request head decided, before its body is read: which endpoint,
/// and for the agent API the cluster whose credential the request carries.
/// Only [`admit`] makes one, so [`handle`] never runs on an agent request
/// whose credential was not checked, and checks it only once.
#[derive(Debug)]
pub struct Admission {
    handler: Handler,
    agent_cluster: Option<ClusterRecord>,
}

/// Decide what can be decided from the request head (method, path, headers)
/// before its body is read. The glue calls this first and reads the body only
/// when it admits the request: an agent request with a wrong credential reads
/// no body at all.
pub fn admit(handler: Handler, head: &Request, env: &Env) -> Result<Admission, Response> {
    let agent_cluster = (handler.head)(handler.endpoint, head, env).map_err(|e| Response::error(&e))?;
    Ok(Admission { handler, agent_cluster })
}

/// Serve an admitted request (its body now read).
pub fn handle(admission: Admission, req: &Request, env: &Env) -> Response {
    let Handler { endpoint, pipeline, work, .. } = admission.handler;
    pipeline(endpoint, work, admission.agent_cluster, req, env).unwrap_or_else(|err| Response::error(&err))
}

fn no_head_decision(_: Endpoint, _: &Request, _: &Env) -> Result<Option<ClusterRecord>, ApiError> {
    Ok(None)
}

fn agent_head(endpoint: Endpoint, head: &Request, env: &Env) -> Result<Option<ClusterRecord>, ApiError> {
    agent::authenticate(endpoint, head, env).map(Some)
}

fn not_found(_: Endpoint, _: Work, _: Option<ClusterRecord>, _: &Request, _: &Env) -> Result<Response, ApiError> {
    Err(ApiError::NotFound("no endpoint at this path".into()))
}

/// An agent endpoint, for the cluster [`agent_head`] authenticated.
fn agent_pipeline(
    endpoint: Endpoint,
    work: Work,
    cluster: Option<ClusterRecord>,
    req: &Request,
    env: &Env,
) -> Result<Response, ApiError> {
    match (work, cluster) {
        (Work::Agent(work), Some(cluster)) => work(req, env, &Store::new(env.kv, env.clock), &cluster),
        _ => not_found(endpoint, work, None, req, env),
    }
}

/// The gateway switch and the method, which every non-agent endpoint checks first.
fn gate(endpoint: Endpoint, req: &Request, config: &Config) -> Result<(), ApiError> {
    if endpoint.spec().gated && !config.gateway_enabled()? {
        return Err(ApiError::AccessUnavailable);
    }
    check_method(endpoint, req)
}

/// The JWKS and the sign-in flow: no session.
fn public_pipeline(
    endpoint: Endpoint,
    work: Work,
    _: Option<ClusterRecord>,
    req: &Request,
    env: &Env,
) -> Result<Response, ApiError> {
    let Work::Public(work) = work else { return not_found(endpoint, work, None, req, env) };
    let config = Config::new(env.vars);
    gate(endpoint, req, &config)?;
    work(endpoint, req, env, &config)
}

/// [`admit`] and [`handle`] in one, for a request whose body is already read.
pub fn serve(endpoint: Endpoint, req: &Request, env: &Env) -> Response {
    match admit(handler(endpoint), req, env) {
        Ok(admission) => handle(admission, req, env),
        Err(refusal) => refusal,
    }
}

fn jwks(_: Endpoint, _: &Request, _: &Env, config: &Config) -> Result<Response, ApiError> {
    Ok(Response::json(200, &config.token_jwks()?))
}

/// A session endpoint: the session verified, the caller admitted, then `work`.
fn session_pipeline(
    endpoint: Endpoint,
    work: Work,
    _: Option<ClusterRecord>,
    req: &Request,
    env: &Env,
) -> Result<Response, ApiError> {
    let Work::Session(work) = work else { return not_found(endpoint, work, None, req, env) };
    let config = Config::new(env.vars);
    gate(endpoint, req, &config)?;
    let store = Store::new(env.kv, env.clock);
    let providers = Providers::new(env.kv, env.outbound, env.now);
    let session = identity::authenticate(req, &config.issuers()?, &providers, &store, env.now)?;
    identity::check_csrf(req, &session)?;
    let member = store.admit(&session.identity, env.now)?;
    let caller = Caller { session, member };
    authz::admit(&caller.member)?;
    // Only an admitted request remembers its verification: a refused one writes nothing.
    if let Some(key) = &caller.session.unremembered {
        store.remember(key, &caller.session.identity, env.now);
    }
    work(&Cx { req, env, config, store, caller })
}

/// One request's context, after authentication: what every handler uses.
struct Cx<'a> {
    req: &'a Request,
    env: &'a Env<'a>,
    config: Config<'a>,
    store: Store<'a>,
    caller: Caller,
}

/// The `email` field of a request body: `missing` when it is absent or
/// empty, the one "not a valid email address" when it does not parse.
fn email_field(value: Option<&str>, missing: &'static str) -> Result<Email, ApiError> {
    match value {
        None | Some("") => Err(ApiError::validation("email", missing)),
        Some(e) => Email::parse(e).ok_or_else(|| ApiError::validation("email", "email is not a valid email address")),
    }
}

impl Cx<'_> {
    /// `grants`: list (`GET`) or create (`POST`).
    fn grants(&self) -> Result<Response, ApiError> {
        if self.req.method == Method::Post { self.create_grant() } else { self.list_grants() }
    }

    /// `clusters`: list (`GET`) or register (`POST`).
    fn clusters(&self) -> Result<Response, ApiError> {
        if self.req.method == Method::Post { self.register_cluster() } else { self.list_clusters() }
    }

    /// `directory`: list (`GET`), invite (`POST`) or change one member (`PATCH …/:member_id`).
    fn members(&self) -> Result<Response, ApiError> {
        if self.req.param("member_id").is_some() {
            self.patch_member()
        } else if self.req.method == Method::Post {
            self.invite()
        } else {
            self.directory()
        }
    }

    /// The path's cluster, if the caller may see it (`404` otherwise).
    fn cluster(&self) -> Result<ClusterRecord, ApiError> {
        let found = match self.req.param("cluster_id").and_then(ClusterId::parse) {
            Some(id) => self.store.cluster(&id)?,
            None => None,
        };
        authz::visible_cluster(&self.caller, found)
    }

    fn agent_online(&self, cluster_id: &ClusterId) -> Result<bool, ApiError> {
        Ok(self.store.agent_online(cluster_id, self.env.now, self.config.agent_offline_after()?)?)
    }

    fn authorize(&self, action: Action) -> Result<(), ApiError> {
        authz::authorize(&self.caller, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{Auth, ENDPOINTS};

    /// The handlers and the endpoint table say the same about who calls:
    /// exactly the table's agent endpoints authenticate from the head.
    #[test]
    fn exactly_the_agent_endpoints_are_authenticated_by_their_head() {
        for spec in ENDPOINTS {
            let agent = matches!(handler(spec.endpoint).work, Work::Agent(_));
            assert_eq!(agent, spec.auth == Auth::Agent, "{:?}", spec.endpoint);
            assert_eq!(handler(spec.endpoint).endpoint(), spec.endpoint);
        }
    }
}
