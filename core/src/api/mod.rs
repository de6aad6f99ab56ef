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
use crate::endpoint::{Auth, Endpoint, Env, check_method};
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

/// What the request head decided, before its body is read: which endpoint,
/// and for the agent API the cluster whose credential the request carries.
/// Only [`admit`] makes one, so [`handle`] never runs on an agent request
/// whose credential was not checked, and checks it only once.
#[derive(Debug)]
pub struct Admission {
    endpoint: Endpoint,
    agent_cluster: Option<ClusterRecord>,
}

/// Decide what can be decided from the request head (method, path, headers)
/// before its body is read. The glue calls this first and reads the body only
/// when it admits the request: an agent request with a wrong credential reads
/// no body at all.
pub fn admit(endpoint: Endpoint, head: &Request, env: &Env) -> Result<Admission, Response> {
    let agent_cluster = match endpoint.spec().auth {
        Auth::Agent => Some(agent::authenticate(endpoint, head, env).map_err(|e| Response::error(&e))?),
        Auth::Session | Auth::Public => None,
    };
    Ok(Admission { endpoint, agent_cluster })
}

/// Serve an admitted request (its body now read).
pub fn handle(admission: Admission, req: &Request, env: &Env) -> Response {
    let result = match admission.agent_cluster {
        Some(cluster) => agent::serve(admission.endpoint, req, env, &cluster),
        None => serve_session(admission.endpoint, req, env),
    };
    result.unwrap_or_else(|err| Response::error(&err))
}

/// [`admit`] and [`handle`] in one, for a request whose body is already read.
pub fn serve(endpoint: Endpoint, req: &Request, env: &Env) -> Response {
    match admit(endpoint, req, env) {
        Ok(admission) => handle(admission, req, env),
        Err(refusal) => refusal,
    }
}

fn serve_session(endpoint: Endpoint, req: &Request, env: &Env) -> Result<Response, ApiError> {
    if endpoint == Endpoint::NotFound {
        return Err(ApiError::NotFound("no endpoint at this path".into()));
    }
    let config = Config::new(env.vars);
    if endpoint.spec().gated && !config.gateway_enabled()? {
        return Err(ApiError::AccessUnavailable);
    }
    check_method(endpoint, req)?;
    match endpoint {
        Endpoint::Jwks => return Ok(Response::json(200, &config.token_jwks()?)),
        Endpoint::LoginConfig | Endpoint::AuthLogin | Endpoint::AuthCallback | Endpoint::AuthLogout => {
            return sign_in::serve(endpoint, req, env, &config);
        }
        _ => {}
    }
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
    let cx = Cx { req, env, config, store, caller };
    match endpoint {
        Endpoint::Capabilities => cx.capabilities(),
        Endpoint::Members => cx.eligible_members(),
        Endpoint::Grants if req.method == Method::Post => cx.create_grant(),
        Endpoint::Grants => cx.list_grants(),
        Endpoint::Grant => cx.delete_grant(),
        Endpoint::RevokeAll => cx.revoke_all(),
        Endpoint::Clusters if req.method == Method::Post => cx.register_cluster(),
        Endpoint::Clusters => cx.list_clusters(),
        Endpoint::Cluster => cx.delete_cluster(),
        Endpoint::AgentCredential => cx.rotate_agent_credential(),
        Endpoint::Directory if req.param("member_id").is_some() => cx.patch_member(),
        Endpoint::Directory if req.method == Method::Post => cx.invite(),
        Endpoint::Directory => cx.directory(),
        Endpoint::Me => cx.me(),
        Endpoint::K8sToken => cx.k8s_token(),
        Endpoint::Kubeconfig => cx.kubeconfig(),
        Endpoint::Jwks
        | Endpoint::Portal
        | Endpoint::LoginConfig
        | Endpoint::AuthLogin
        | Endpoint::AuthCallback
        | Endpoint::AuthLogout
        | Endpoint::NotFound
        | Endpoint::AgentHeartbeat
        | Endpoint::AgentJobs
        | Endpoint::AgentReports
        | Endpoint::AgentState => Err(ApiError::NotFound("no endpoint at this path".into())),
    }
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
