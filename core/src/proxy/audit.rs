//! One audit record per proxied request: who, what, the answer, how much and
//! how long. It is built from typed parts only, so it cannot carry the token
//! or the query string (which can carry one).

use serde::Serialize;

use super::request_info::RequestInfo;
use crate::ids::{ClusterId, MemberId};

/// An audit record, one JSON object per line in the agent's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Always `lanyard.audit.v1`, to find the records among other log lines.
    pub audit: &'static str,
    /// The cluster.
    pub cluster_id: ClusterId,
    /// The member, when the token verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<MemberId>,
    /// Their Kubernetes user, when the token verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What the request asked for.
    pub request: RequestInfo,
    /// The status the client got.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// Milliseconds from the request to the end of the response (or of the upgraded session).
    pub duration_ms: u64,
    /// For an upgraded session (`exec`, `attach`, `port-forward`): `start` when it opens, `end` when it closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionEvent>,
}

/// The two records of an upgraded session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEvent {
    /// The upgrade succeeded; the session is open.
    Start,
    /// The session closed.
    End,
}

/// The name every audit record carries in `audit`.
pub const AUDIT_SCHEMA: &str = "lanyard.audit.v1";

impl AuditRecord {
    /// The record as one JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::proxy::request_info::request_info;

    #[test]
    fn a_record_names_who_did_what_and_nothing_of_the_query() {
        let path = "/api/v1/namespaces/team-a/pods/web/exec";
        let record = AuditRecord {
            audit: AUDIT_SCHEMA,
            cluster_id: ClusterId::derive(&["prod"]),
            member_id: Some(MemberId::derive(&["dev"])),
            user: Some("lanyard:dev@ex.io".into()),
            request: request_info(Method::Post, path, false),
            status: 101,
            bytes: 0,
            duration_ms: 3,
            session: Some(SessionEvent::Start),
        };
        let json: serde_json::Value = serde_json::from_str(&record.to_line()).unwrap();
        assert_eq!(json["audit"], AUDIT_SCHEMA);
        assert_eq!(json["request"]["verb"], "create");
        assert_eq!(json["request"]["subresource"], "exec");
        assert_eq!(json["request"]["namespace"], "team-a");
        assert_eq!(json["session"], "start");
        assert!(!record.to_line().contains('?'), "no query string");
    }
}
