//! The endpoints. Each component calls [`handle`] with its [`Endpoint`]; the
//! request pipeline is the same for all of them and lives here once, with the
//! rules of each endpoint from the table in [`crate::endpoint`]:
//!
//! 1. access endpoints answer `404 access_unavailable` while the gateway is off;
//! 2. the method must be one the endpoint serves (`405` otherwise);
//! 3. the session is verified, the caller admitted to the directory, and a
//!    cookie-authenticated write must carry the CSRF header;
//! 4. the cluster must exist in the caller's organisation (`404` otherwise);
//! 5. [`authz::authorize`] decides;
//! 6. only then is the body read and validated, and the store touched.
//!
//! The agent API has its own pipeline ([`crate::agent_api`]).

use serde::{Deserialize, Serialize};

use crate::authz::{self, Action, Caller};
use crate::config::Config;
use crate::endpoint::{Auth, Endpoint, Env, check_method};
use crate::error::ApiError;
use crate::http::{Method, Request, Response};
use crate::identity::{self, Via};
use crate::ids::rfc3339;
use crate::model::{
    ClusterKind, Email, GrantSpec, GrantStatus, MemberStatus, Namespace, OrgRole, Role, Scope, ScopeKind,
    display_status,
};
use crate::records::{ClusterRecord, GrantWithStatus, Member};
use crate::store::Store;

/// Cluster tokens one member may mint per minute (the exec plugin caches them).
pub const TOKEN_MINTS_PER_MINUTE: i64 = 30;
/// How long the credentials an agent-credential rotation replaces stay valid
/// by default (unless the agent uses the new one first).
pub const PREVIOUS_CREDENTIAL_VALID_SECS: u64 = 60 * 60;
/// The longest an admin may keep replaced agent credentials valid.
pub const MAX_PREVIOUS_CREDENTIAL_VALID_SECS: u64 = 24 * 60 * 60;

/// Decide what can be decided from the request head (method, path, headers)
/// before its body is read. The glue calls this first and reads the body only
/// when it answers `None`: an agent request with a wrong credential reads no
/// body at all. [`handle`] checks everything again, so skipping this is safe.
pub fn precheck(endpoint: Endpoint, head: &Request, env: &Env) -> Option<Response> {
    if endpoint.spec().auth != Auth::Agent {
        return None;
    }
    crate::agent_api::precheck(endpoint, head, &Store::new(env.kv, env.clock), env.now)
        .err()
        .map(|e| Response::error(&e))
}

/// Serve one request.
pub fn handle(endpoint: Endpoint, req: &Request, env: &Env) -> Response {
    match serve(endpoint, req, env) {
        Ok(resp) => resp,
        Err(err) => Response::error(&err),
    }
}

fn serve(endpoint: Endpoint, req: &Request, env: &Env) -> Result<Response, ApiError> {
    if endpoint == Endpoint::NotFound {
        return Err(ApiError::NotFound("no endpoint at this path".into()));
    }
    let spec = endpoint.spec();
    if spec.auth == Auth::Agent {
        return crate::agent_api::serve(endpoint, req, env);
    }
    let config = Config::new(env.vars);
    if spec.gated && !config.gateway_enabled()? {
        return Err(ApiError::AccessUnavailable);
    }
    check_method(endpoint, req)?;
    if endpoint == Endpoint::Jwks {
        return Ok(Response::json(200, &config.token_jwks()?));
    }
    let store = Store::new(env.kv, env.clock);
    let session = identity::authenticate(req, &config.issuers()?, env.now)?;
    identity::check_csrf(req, &session)?;
    let member = store.admit(&session.identity, env.now)?;
    let caller = Caller { session, member };
    authz::admit(&caller.member)?;
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
        Endpoint::Directory => cx.directory(),
        Endpoint::K8sToken => cx.k8s_token(),
        Endpoint::Kubeconfig => cx.kubeconfig(),
        _ => Err(ApiError::NotFound("no endpoint at this path".into())),
    }
}

/// One request's context, after authentication.
struct Cx<'a> {
    req: &'a Request,
    env: &'a Env<'a>,
    config: Config<'a>,
    store: Store<'a>,
    caller: Caller,
}

// ----- wire types ----------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct GrantView {
    pub id: String,
    pub cluster_id: String,
    pub member_id: String,
    pub email: String,
    pub role: Role,
    pub scope: ScopeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub status: GrantStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
    pub created_by: String,
}

impl GrantView {
    fn new(g: &GrantWithStatus, agent_online: bool) -> Self {
        let (status, error) = display_status(g.observed.as_ref(), agent_online);
        let r = &g.grant;
        GrantView {
            id: r.id.clone(),
            cluster_id: r.cluster_id.clone(),
            member_id: r.member_id.clone(),
            email: r.email.to_string(),
            role: r.role,
            scope: r.scope,
            namespace: r.namespace.as_ref().map(|n| n.to_string()),
            status,
            error: error.map(str::to_owned),
            created_at: rfc3339(r.created_at),
            created_by: r.created_by.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MemberView {
    pub id: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: MemberStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<OrgRole>,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        MemberView {
            id: m.id.clone(),
            email: m.email.to_string(),
            name: m.name.clone(),
            status: m.status,
            role: m.role,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ClusterView {
    pub id: String,
    pub name: String,
    pub kind: ClusterKind,
    pub proxy_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub access_supported: bool,
    pub agent: AgentView,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct AgentView {
    pub online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGrantBody {
    email: Option<String>,
    role: Option<String>,
    scope: Option<String>,
    namespace: Option<String>,
}

impl CreateGrantBody {
    /// Validate every field, naming the first bad one.
    fn validate(self) -> Result<GrantSpec, ApiError> {
        let email = match self.email.as_deref() {
            None | Some("") => {
                return Err(ApiError::validation("email", "email is required: the member's email address"));
            }
            Some(e) => {
                Email::parse(e).ok_or_else(|| ApiError::validation("email", "email is not a valid email address"))?
            }
        };
        let role_names = Role::ALL.map(Role::as_str).join(", ");
        let role = match self.role.as_deref() {
            None => return Err(ApiError::validation("role", format!("role is required: one of {role_names}"))),
            Some(r) => Role::parse(r)
                .ok_or_else(|| ApiError::validation("role", format!("role must be one of {role_names}")))?,
        };
        let scope = match self.scope.as_deref().map(ScopeKind::parse) {
            None => return Err(ApiError::validation("scope", "scope is required: cluster or namespace")),
            Some(None) => return Err(ApiError::validation("scope", "scope must be cluster or namespace")),
            Some(Some(ScopeKind::Cluster)) => {
                if self.namespace.is_some() {
                    return Err(ApiError::validation(
                        "namespace",
                        "a cluster-scoped grant takes no namespace; use scope namespace to grant in one namespace",
                    ));
                }
                Scope::Cluster
            }
            Some(Some(ScopeKind::Namespace)) => {
                let raw = self.namespace.ok_or_else(|| {
                    ApiError::validation("namespace", "a namespace-scoped grant must name the namespace")
                })?;
                let ns = Namespace::parse(&raw).map_err(|e| {
                    ApiError::validation("namespace", format!("namespace is not a valid DNS-1123 label: it {e}"))
                })?;
                Scope::Namespace(ns)
            }
        };
        GrantSpec::new(email, role, scope)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterClusterBody {
    name: Option<String>,
    kind: Option<String>,
    proxy_url: Option<String>,
    ca_pem: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateCredentialBody {
    previous_valid_for_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberPatchBody {
    status: Option<String>,
    /// `true`: release the member's sign-in identity ([`Store::release_identity`]).
    release_identity: Option<bool>,
}

/// A proxy URL: `https://host[:port][/path]`, or plain `http` to a loopback
/// address (`localhost`, `127.0.0.0/8`, `[::1]`) for local development.
fn validate_proxy_url(url: &str) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::validation("proxy_url", m.to_owned()));
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("proxy_url must be a URL without spaces, at most 2048 characters");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("proxy_url must be an https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("proxy_url must not carry credentials");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) if h.parse::<std::net::Ipv6Addr>().is_ok() => (h, None),
            Some((h, tail)) if h.parse::<std::net::Ipv6Addr>().is_ok() && tail.starts_with(':') => {
                (h, Some(&tail[1..]))
            }
            _ => return bad("proxy_url has a malformed IPv6 address (write it as https://[address]:port)"),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
    if !host_ok {
        return bad("proxy_url has no valid host");
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return bad("proxy_url has an invalid port");
    }
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => bad("proxy_url must use https (plain http is allowed only to a loopback address)"),
        _ => bad("proxy_url must be an https:// URL"),
    }
}

impl Cx<'_> {
    fn cluster(&self) -> Result<ClusterRecord, ApiError> {
        let id = self.req.param("cluster_id").unwrap_or("");
        authz::visible_cluster(&self.caller, self.store.cluster(id)?)
    }

    fn agent_online(&self, cluster_id: &str) -> Result<bool, ApiError> {
        Ok(self.store.agent_online(cluster_id, self.env.now, self.config.agent_offline_after()?)?)
    }

    fn authorize(&self, action: Action) -> Result<(), ApiError> {
        authz::authorize(&self.caller, action)
    }

    fn capabilities(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::ViewCapabilities)?;
        let supported = cluster.kind == ClusterKind::Standard;
        let online = self.agent_online(&cluster.id)?;
        let mine: Vec<GrantView> = if supported {
            let epoch = self.store.epoch(&cluster.id)?;
            self.caller_grants(&cluster.id, epoch)?.iter().map(|g| GrantView::new(g, online)).collect()
        } else {
            Vec::new()
        };
        let mut body = serde_json::json!({
            "cluster_id": cluster.id,
            "cluster_name": cluster.name,
            "enabled": true,
            "supported": supported,
            "can_manage": self.caller.is_admin(),
            "has_access": !mine.is_empty(),
            "grants": mine,
            "agent_online": online,
        });
        if !supported {
            body["reason"] = "sandbox clusters do not support Cluster Access".into();
        }
        if self.caller.session.via == Via::Cookie {
            body["csrf_token"] = self.caller.session.csrf.clone().into();
        }
        // It may carry the session's CSRF value.
        Ok(Response::json(200, &body).no_store())
    }

    /// The caller's own grants on the cluster that are live at `epoch`.
    fn caller_grants(&self, cluster_id: &str, epoch: i64) -> Result<Vec<GrantWithStatus>, ApiError> {
        let mut grants = self.store.grants_at(cluster_id, epoch)?;
        grants.retain(|g| g.grant.member_id == self.caller.member.id);
        Ok(grants)
    }

    /// The caller's own grants, live at `epoch`, on a cluster that supports
    /// access: minting and kubeconfigs need one, whatever its status, for
    /// every caller (managing access is not kubectl access).
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

    fn k8s_token(&self) -> Result<Response, ApiError> {
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
        Ok(Response::json(
            200,
            &serde_json::json!({
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": { "token": token, "expirationTimestamp": rfc3339(expires_at) },
            }),
        )
        .no_store())
    }

    fn kubeconfig(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::MintToken)?;
        let epoch = self.store.epoch(&cluster.id)?;
        let mine = self.own_grants(&cluster, epoch)?;
        // A cluster-wide grant needs no default namespace; otherwise the oldest namespace grant's.
        let namespace = if mine.iter().any(|g| g.grant.namespace.is_none()) {
            None
        } else {
            mine.iter()
                .min_by_key(|g| g.grant.created_at)
                .and_then(|g| g.grant.namespace.as_ref())
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
            None => self.request_origin().ok_or_else(|| {
                ApiError::unavailable(
                    "set the public_url variable: the request does not say how clients reach the control plane",
                )
            })?,
        };
        let text = crate::kubeconfig::render(&cluster, &control_plane, namespace.as_deref());
        Ok(Response::text(200, "application/yaml", text))
    }

    /// `scheme://authority` of the request, from Spin's `spin-full-url`.
    fn request_origin(&self) -> Option<String> {
        let full = self.req.router_header("spin-full-url")?;
        let (scheme, rest) = full.split_once("://")?;
        let authority = rest.split('/').next()?;
        let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        (matches!(scheme, "http" | "https") && clean(authority)).then(|| format!("{scheme}://{authority}"))
    }

    fn eligible_members(&self) -> Result<Response, ApiError> {
        self.cluster()?;
        self.authorize(Action::ListEligibleMembers)?;
        let members: Vec<MemberView> = self
            .store
            .members(self.caller.org())?
            .iter()
            .filter(|m| m.status == MemberStatus::Active)
            .map(MemberView::from)
            .collect();
        Ok(Response::json(200, &serde_json::json!({ "members": members })))
    }

    fn list_grants(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::ListGrants)?;
        let online = self.agent_online(&cluster.id)?;
        let grants: Vec<GrantView> =
            self.store.grants(&cluster.id)?.iter().map(|g| GrantView::new(g, online)).collect();
        Ok(Response::json(200, &serde_json::json!({ "grants": grants, "agent_online": online })))
    }

    fn create_grant(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::CreateGrant)?;
        if cluster.kind == ClusterKind::Sandbox {
            return Err(ApiError::cluster_access_unsupported());
        }
        let spec = self.req.json::<CreateGrantBody>()?.validate()?;
        let member = self.store.member_by_email(self.caller.org(), spec.email())?;
        let member = match member {
            Some(m) if m.status == MemberStatus::Active => m,
            other => {
                let why = match other.map(|m| m.status) {
                    None => "is not a member of this organisation; they must sign in to Lanyard once first",
                    Some(MemberStatus::Invited) => "has been invited but has not signed in yet",
                    Some(MemberStatus::Deactivated) => "is deactivated in this organisation",
                    Some(MemberStatus::Active) => unreachable!("matched above"),
                };
                return Err(ApiError::MemberNotEligible(format!("{} {why}", spec.email())));
            }
        };
        let record = self.store.create_grant(&cluster.id, &spec, &member.id, self.caller.audit_name(), self.env.now)?;
        let online = self.agent_online(&cluster.id)?;
        let view = GrantView::new(&GrantWithStatus { grant: record, observed: None }, online);
        Ok(Response::json(201, &view))
    }

    fn delete_grant(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::RevokeGrant)?;
        let grant_id = self.req.param("grant_id").unwrap_or("");
        self.store.delete_grant(&cluster.id, grant_id, self.env.now)?;
        Ok(Response::no_content())
    }

    fn revoke_all(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::RevokeAll)?;
        let r = self.store.revoke_all(&cluster.id, self.env.now)?;
        Ok(Response::json(200, &serde_json::json!({ "revoked": r.revoked, "revocation_epoch": r.epoch })))
    }

    fn cluster_view(&self, c: &ClusterRecord) -> Result<ClusterView, ApiError> {
        let beat = self.store.heartbeat(&c.id)?;
        let offline_after = self.config.agent_offline_after()?;
        Ok(ClusterView {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind,
            proxy_url: c.proxy_url.clone(),
            ca_pem: c.ca_pem.clone(),
            access_supported: c.kind == ClusterKind::Standard,
            agent: AgentView {
                online: beat.as_ref().is_some_and(|b| b.is_fresh(self.env.now, offline_after)),
                last_heartbeat: beat.map(|b| rfc3339(b.at)),
            },
            created_at: rfc3339(c.created_at),
        })
    }

    fn list_clusters(&self) -> Result<Response, ApiError> {
        self.authorize(Action::ListClusters)?;
        let clusters = self.store.clusters(self.caller.org())?;
        let views = clusters.iter().map(|c| self.cluster_view(c)).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::json(200, &serde_json::json!({ "clusters": views })))
    }

    fn register_cluster(&self) -> Result<Response, ApiError> {
        self.authorize(Action::RegisterCluster)?;
        let body: RegisterClusterBody = self.req.json()?;
        let name = match body.name.as_deref() {
            None | Some("") => return Err(ApiError::validation("name", "name is required")),
            Some(n) => Namespace::parse(n)
                .map_err(|e| ApiError::validation("name", format!("name must be a DNS-1123 label: it {e}")))?,
        };
        let kind = match body.kind.as_deref() {
            None | Some("standard") => ClusterKind::Standard,
            Some("sandbox") => ClusterKind::Sandbox,
            Some(_) => return Err(ApiError::validation("kind", "kind must be standard or sandbox")),
        };
        let proxy_url = body.proxy_url.ok_or_else(|| ApiError::validation("proxy_url", "proxy_url is required"))?;
        validate_proxy_url(&proxy_url)?;
        if let Some(ca) = &body.ca_pem
            && !(ca.contains("-----BEGIN CERTIFICATE-----") && ca.contains("-----END CERTIFICATE-----"))
        {
            return Err(ApiError::validation("ca_pem", "ca_pem must be PEM-encoded certificates"));
        }
        let (record, credential) = self.store.register_cluster(
            self.caller.org(),
            &name,
            kind,
            &proxy_url,
            body.ca_pem.as_deref(),
            self.caller.audit_name(),
            self.env.now,
        )?;
        let view = self.cluster_view(&record)?;
        // The agent credential is shown once and must not be kept by any cache.
        Ok(Response::json(201, &serde_json::json!({ "cluster": view, "agent_credential": credential })).no_store())
    }

    fn delete_cluster(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::DeleteCluster)?;
        self.store.delete_cluster(&cluster, self.caller.audit_name(), self.env.now)?;
        Ok(Response::no_content())
    }

    fn rotate_agent_credential(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::RotateAgentCredential)?;
        let body: RotateCredentialBody = self.req.json_or_default()?;
        let max = MAX_PREVIOUS_CREDENTIAL_VALID_SECS;
        let valid_for = match body.previous_valid_for_seconds {
            None => PREVIOUS_CREDENTIAL_VALID_SECS,
            Some(s) => u64::try_from(s).ok().filter(|s| *s <= max).ok_or_else(|| {
                ApiError::validation(
                    "previous_valid_for_seconds",
                    format!("previous_valid_for_seconds must be 0 to {max}; 0 refuses the old credential at once"),
                )
            })?,
        };
        let until = self.env.now.saturating_add(valid_for);
        let credential =
            self.store.rotate_agent_credential(&cluster.id, self.caller.audit_name(), until, self.env.now)?;
        // The credential is shown this once: no cache may keep it.
        Ok(Response::json(
            201,
            &serde_json::json!({ "agent_credential": credential, "previous_valid_until": rfc3339(until) }),
        )
        .no_store())
    }

    fn directory(&self) -> Result<Response, ApiError> {
        let org = self.caller.org();
        if let Some(id) = self.req.param("member_id") {
            self.authorize(Action::ManageDirectory)?;
            let body: MemberPatchBody = self.req.json()?;
            let release = match body.release_identity {
                None => false,
                Some(true) => true,
                Some(false) => {
                    return Err(ApiError::validation(
                        "release_identity",
                        "release_identity can only be true (or left out)",
                    ));
                }
            };
            let deactivate = match body.status.as_deref() {
                None if release => None,
                Some("deactivated") => Some(true),
                Some("active") => Some(false),
                _ => {
                    return Err(ApiError::validation(
                        "status",
                        "status must be active or deactivated (or send release_identity: true alone)",
                    ));
                }
            };
            if deactivate == Some(true) && id == self.caller.member.id {
                return Err(ApiError::validation("status", "you cannot deactivate yourself"));
            }
            let released = if release { Some(self.store.release_identity(org, id)?) } else { None };
            let member = match (deactivate, released) {
                (Some(deactivate), _) => {
                    self.store.set_deactivated(org, id, deactivate, self.caller.audit_name(), self.env.now)?
                }
                (None, Some(member)) => member,
                (None, None) => unreachable!("a body without status releases the identity (validated above)"),
            };
            return Ok(Response::json(200, &MemberView::from(&member)));
        }
        if self.req.method == Method::Post {
            self.authorize(Action::ManageDirectory)?;
            let body: InviteBody = self.req.json()?;
            let email = match body.email.as_deref() {
                None | Some("") => return Err(ApiError::validation("email", "email is required")),
                Some(e) => Email::parse(e)
                    .ok_or_else(|| ApiError::validation("email", "email is not a valid email address"))?,
            };
            let member = self.store.invite(org, &email, self.caller.audit_name(), self.env.now)?;
            return Ok(Response::json(201, &MemberView::from(&member)));
        }
        self.authorize(Action::ReadDirectory)?;
        let members: Vec<MemberView> = self.store.members(org)?.iter().map(MemberView::from).collect();
        Ok(Response::json(200, &serde_json::json!({ "members": members })))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_proxy_url;

    #[test]
    fn proxy_urls() {
        for ok in [
            "https://proxy.example",
            "https://proxy.example:8443/base",
            "https://10.0.0.1:443",
            "https://[2001:db8::1]:8443",
            "http://127.0.0.1:8443",
            "http://127.3.4.5",
            "http://localhost:8443",
            "http://[::1]:8443",
        ] {
            assert!(validate_proxy_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.evil.example",
            "http://proxy.example",
            "https://localhost:abc",
            "https://proxy.example:0",
            "https://proxy.example:70000",
            "https://",
            "https://user:pw@proxy.example",
            "https://[not-v6]:1",
            "https://[::1]evil",
            "https://[::1]evil.example:443",
            "http://[::1]x:8443",
            "https://[::1]:",
            "https://bad_host.example",
            "ftp://proxy.example",
            "proxy.example",
            "https://proxy.example/ x",
        ] {
            assert!(validate_proxy_url(bad).is_err(), "{bad}");
        }
    }
}
