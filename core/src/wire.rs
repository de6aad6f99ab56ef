//! The wire: every message of the HTTP API and of the agent API, defined
//! once. The server serializes these types, the agent and the CLI
//! deserialize into them, so a change to a message that one side does not
//! follow is a compile error, not a surprise in production.
//!
//! Enums (`GrantStatus`, `Role`, `Scope`, `ClusterKind`, `ErrorCode`) and
//! validated newtypes (ids, names, emails, namespaces) are used as they are
//! on the wire, so a client never holds an unchecked string where a type
//! exists. Request bodies are the exception where the server must name the
//! bad field in its own words (`{"field": "role", ...}`): those keep their
//! fields as text and are validated once, by the endpoint (`crate::api`).
//!
//! Timestamps are RFC 3339 text ([`crate::ids::rfc3339`]).

use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, GrantId, MemberId};
use crate::model::{ClusterKind, ClusterName, Email, GrantStatus, GrantTerms, MemberStatus, OrgRole};
pub use crate::rbac::DesiredGrant;
pub use crate::records::Job;

// ----- errors --------------------------------------------------------------

/// Every error code the API answers with (`{"error": {"code": …}}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is not what the endpoint reads.
    MalformedRequest,
    /// 401: no valid session or agent credential.
    Unauthenticated,
    /// 403: not allowed (not an admin, no grant, deactivated).
    Forbidden,
    /// 403: a cookie-authenticated write without its CSRF header.
    CsrfRequired,
    /// 404: no such thing (or another organisation's).
    NotFound,
    /// 404: Cluster Access is switched off on this deployment.
    AccessUnavailable,
    /// 405: the route does not serve the method.
    MethodNotAllowed,
    /// 409: a live cluster of that name exists.
    DuplicateCluster,
    /// 409: exactly this grant exists.
    DuplicateGrant,
    /// 409: the email is in the directory already.
    MemberExists,
    /// 409: a sandbox cluster does not support Cluster Access.
    ClusterAccessUnsupported,
    /// 413: the body is over the endpoint's limit.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: a field is invalid (`field` names it).
    ValidationFailed,
    /// 422: the member cannot hold a grant (not signed in, deactivated).
    MemberNotEligible,
    /// 429: too many token mints; see `Retry-After`.
    RateLimited,
    /// 503: the deployment lacks a setting this endpoint needs.
    NotConfigured,
    /// 503: a dependency failed; retry.
    Unavailable,
    /// A code this client does not know (a newer server, or not Lanyard).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it is on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CsrfRequired => "csrf_required",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AccessUnavailable => "access_unavailable",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::DuplicateCluster => "duplicate_cluster",
            ErrorCode::DuplicateGrant => "duplicate_grant",
            ErrorCode::MemberExists => "member_exists",
            ErrorCode::ClusterAccessUnsupported => "cluster_access_unsupported",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::MemberNotEligible => "member_not_eligible",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for a program (`code`, `field`) and for a person (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence for the person who hit it, saying what to do next.
    pub message: String,
    /// The request field a validation error is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

// ----- clusters ------------------------------------------------------------

/// A cluster, as `GET /api/v1/clusters` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Its id.
    pub id: ClusterId,
    /// Its name in the organisation.
    pub name: ClusterName,
    /// Standard or sandbox.
    pub kind: ClusterKind,
    /// Where kubectl reaches its access proxy.
    pub proxy_url: String,
    /// The proxy's CA certificates (PEM), if not publicly trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Whether it supports Cluster Access (standard clusters do).
    pub access_supported: bool,
    /// Its agent's liveness.
    pub agent: AgentStatus,
    /// When it was registered.
    pub created_at: String,
}

/// Whether a cluster's agent is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Its last heartbeat is recent enough.
    pub online: bool,
    /// When it last sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
}

/// `GET /api/v1/clusters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterList {
    /// The organisation's clusters.
    pub clusters: Vec<Cluster>,
}

/// `POST /api/v1/clusters`: register a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterCluster {
    /// Its name (a DNS-1123 label).
    pub name: Option<String>,
    /// `standard` (the default) or `sandbox`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Where kubectl reaches its access proxy (`https://`, or `http://` to loopback).
    pub proxy_url: Option<String>,
    /// The proxy's CA certificates (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// The answer to a registration: the cluster, and its agent credential, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredCluster {
    /// The new cluster.
    pub cluster: Cluster,
    /// The agent's credential: give it to the agent; it is not shown again.
    pub agent_credential: String,
}

/// `POST /api/v1/clusters/{id}/agent-credential`: rotate the agent credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateCredential {
    /// How long the replaced credentials stay valid (0 refuses them at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_valid_for_seconds: Option<i64>,
}

/// The answer to a rotation: the new credential, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedCredential {
    /// The new agent credential.
    pub agent_credential: String,
    /// Until when the replaced ones stay valid (or until the agent first uses the new one).
    pub previous_valid_until: String,
}

// ----- access --------------------------------------------------------------

/// A grant with its reconcile status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Its id.
    pub id: GrantId,
    /// Cluster, member, role and scope (as their own fields).
    #[serde(flatten)]
    pub terms: GrantTerms,
    /// Whether the agent applied it.
    pub status: GrantStatus,
    /// Why it failed (with `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was granted.
    pub created_at: String,
    /// Who granted it.
    pub created_by: String,
}

/// `GET …/access/grants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantList {
    /// The cluster's live grants.
    pub grants: Vec<Grant>,
    /// Whether its agent is connected.
    pub agent_online: bool,
}

/// `POST …/access/grants`: grant a member a role at a scope. The fields are
/// text, as the client was given them, so that the server validates them in
/// one place and names a bad one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// The member's email.
    pub email: Option<String>,
    /// `view`, `edit`, `admin` or `cluster-admin`.
    pub role: Option<String>,
    /// `cluster` or `namespace`.
    pub scope: Option<String>,
    /// The namespace, with scope `namespace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The answer to revoke-all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeAllResult {
    /// How many live grants were revoked.
    pub revoked: usize,
    /// The cluster's new revocation epoch: every older token is refused.
    pub revocation_epoch: i64,
}

/// `GET …/access/capabilities`: what the caller may do on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// Its name.
    pub cluster_name: ClusterName,
    /// Cluster Access is switched on (always, when this answers).
    pub enabled: bool,
    /// The cluster supports it (not a sandbox).
    pub supported: bool,
    /// Why not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The caller may manage access (an organisation admin).
    pub can_manage: bool,
    /// The caller holds at least one grant on it.
    pub has_access: bool,
    /// The caller's own grants on it.
    pub grants: Vec<Grant>,
    /// Whether its agent is connected.
    pub agent_online: bool,
    /// The session's CSRF value, for a cookie session (the Access view echoes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// A client credential for kubectl (`client.authentication.k8s.io/v1`), as
/// the exec plugin prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential {
    /// `client.authentication.k8s.io/v1`.
    pub api_version: String,
    /// `ExecCredential`.
    pub kind: String,
    /// The token and its expiry.
    pub status: ExecCredentialStatus,
}

/// The token of an [`ExecCredential`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredentialStatus {
    /// The cluster token.
    pub token: String,
    /// When it expires (RFC 3339).
    pub expiration_timestamp: String,
}

impl ExecCredential {
    /// The API version kubectl's exec plugins speak.
    pub const API_VERSION: &'static str = "client.authentication.k8s.io/v1";

    /// The credential for `token`, expiring at `expiration_timestamp`.
    pub fn new(token: String, expiration_timestamp: String) -> ExecCredential {
        ExecCredential {
            api_version: Self::API_VERSION.to_owned(),
            kind: "ExecCredential".to_owned(),
            status: ExecCredentialStatus { token, expiration_timestamp },
        }
    }
}

// ----- directory -----------------------------------------------------------

/// A member, as the directory shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Their id.
    pub id: MemberId,
    /// Their email.
    pub email: Email,
    /// Their display name, once they signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Invited, active or deactivated.
    pub status: MemberStatus,
    /// Their organisation role, once they signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<OrgRole>,
}

/// `GET /api/v1/members`, and the members eligible for a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// The members.
    pub members: Vec<Member>,
}

/// `GET /api/v1/me`: who the session is, as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The caller's directory entry.
    pub member: Member,
    /// Their organisation.
    pub organisation: String,
    /// The issuer that signed their session.
    pub issuer: String,
}

/// `POST /api/v1/members`: invite an email.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// The email to invite.
    pub email: Option<String>,
}

/// `PATCH /api/v1/members/{id}`: deactivate, reactivate, or release the sign-in identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    /// `active` or `deactivated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `true`: the next sign-in with the member's email pins it anew.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_identity: Option<bool>,
}

// ----- the agent API -------------------------------------------------------

/// `POST /agent/v1/clusters/{id}/heartbeat` (an empty body is fine).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The agent's version (the first 64 characters are kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The certificate (PEM) of the access proxy, when it serves one it
    /// generated itself: kubeconfigs then trust it, unless the cluster was
    /// registered with a CA of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_ca_pem: Option<String>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// Its revocation epoch.
    pub revocation_epoch: i64,
    /// After how many seconds without a heartbeat the agent counts as offline.
    pub offline_after_seconds: u64,
}

/// `POST …/jobs/lease`: the unacknowledged jobs, a wake-up signal for a level-triggered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The jobs after the acknowledged cursor, oldest first.
    pub jobs: Vec<LeasedJob>,
    /// The cursor: every job up to it is done.
    pub acked: i64,
    /// The last job in `jobs` (or `acked`): acknowledge it when done.
    pub through: i64,
}

/// One job of a [`Lease`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedJob {
    /// Its sequence number.
    pub seq: i64,
    /// What changed.
    pub job: Job,
}

/// `POST …/jobs/ack`: jobs up to `through` are done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// The last job done (`13` or `13.0`: JSON has one number type, and
    /// JSON Schema's `integer` is any number without a fraction).
    #[serde(deserialize_with = "integral")]
    pub through: i64,
}

/// A JSON number without a fraction, whichever way it is written.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(serde::de::Error::custom("expected a whole number")),
    }
}

/// The answer to an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckReply {
    /// The cursor now.
    pub acked: i64,
}

/// `POST …/reports`: reconcile results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// One result per grant.
    pub results: Vec<Report>,
}

/// A grant's reconcile result. Read from a JSON object only: serde's derive
/// would also read a struct from an array of its fields in order
/// (`["g_…", "applied"]`), which the agent API does not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct Report {
    /// The grant.
    pub grant_id: GrantId,
    /// Applied or failed.
    pub state: ReportState,
    /// Why it failed (the first 2048 characters are kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The fields of a [`Report`], as its JSON object names them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportFields {
    grant_id: GrantId,
    state: ReportState,
    error: Option<String>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for Report {
    type Error = serde_json::Error;

    fn try_from(object: serde_json::Map<String, serde_json::Value>) -> Result<Report, serde_json::Error> {
        let ReportFields { grant_id, state, error } = serde_json::from_value(serde_json::Value::Object(object))?;
        Ok(Report { grant_id, state, error })
    }
}

/// The outcome a [`Report`] states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// The binding is in place.
    Applied,
    /// It could not be applied.
    Failed,
}

/// The answer to reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportsReply {
    /// Results recorded (for live grants).
    pub recorded: usize,
    /// Results for grants that are gone.
    pub ignored: usize,
}

/// `GET …/state`: what the control plane wants on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessState {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// Its revocation epoch.
    pub revocation_epoch: i64,
    /// Every live grant of an active member.
    pub grants: Vec<DesiredGrant>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Namespace, Role, Scope};

    #[test]
    fn a_report_is_read_from_an_object_only() {
        let id = GrantId::derive(&["g"]);
        let ok: Reports =
            serde_json::from_value(serde_json::json!({"results": [{"grant_id": id, "state": "applied"}]}))
                .expect("an object");
        assert_eq!(ok.results[0].grant_id, id);
        assert_eq!(ok.results[0].error, None);
        let failed: Reports = serde_json::from_value(
            serde_json::json!({"results": [{"grant_id": id, "state": "failed", "error": null}]}),
        )
        .unwrap();
        assert_eq!(failed.results[0].state, ReportState::Failed);
        for bad in [
            serde_json::json!({"results": [[id, "applied"]]}),
            serde_json::json!({"results": [[id, "applied", "x"]]}),
            serde_json::json!({"results": [{"grant_id": id, "state": "applied", "extra": 1}]}),
            serde_json::json!({"results": [{"state": "applied"}]}),
        ] {
            assert!(serde_json::from_value::<Reports>(bad.clone()).is_err(), "{bad}");
        }
        // The agent still writes what it reads.
        let back: Reports = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
    }

    #[test]
    fn a_grant_keeps_its_scope_in_two_fields() {
        let terms = GrantTerms {
            cluster_id: ClusterId::derive(&["c"]),
            member_id: MemberId::derive(&["m"]),
            email: Email::parse("a@ex.io").unwrap(),
            role: Role::Edit,
            scope: Scope::Namespace(Namespace::parse("team-a").unwrap()),
        };
        let grant = Grant {
            id: GrantId::derive(&["g"]),
            terms,
            status: GrantStatus::Pending,
            error: None,
            created_at: "2026-12-01T00:00:00Z".into(),
            created_by: "admin@ex.io".into(),
        };
        let json = serde_json::to_value(&grant).unwrap();
        assert_eq!((json["scope"].as_str(), json["namespace"].as_str()), (Some("namespace"), Some("team-a")));
        assert_eq!(serde_json::from_value::<Grant>(json.clone()).unwrap(), grant);
        let mut cluster_with_namespace = json;
        cluster_with_namespace["scope"] = "cluster".into();
        assert!(serde_json::from_value::<Grant>(cluster_with_namespace).is_err());
    }

    #[test]
    fn error_codes_round_trip_and_unknown_ones_are_kept_apart() {
        for code in [ErrorCode::Forbidden, ErrorCode::DuplicateGrant, ErrorCode::ClusterAccessUnsupported] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json.as_str(), Some(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
        }
        assert_eq!(serde_json::from_value::<ErrorCode>("from_the_future".into()).unwrap(), ErrorCode::Unknown);
    }
}
