//! Domain types: roles, scopes, grants, clusters and members.
//!
//! Types make bad states unrepresentable: a [`Namespace`] is a validated
//! DNS-1123 label, a [`Scope::Namespace`] carries one, a [`Role`] is an enum, and
//! a [`GrantSpec`] can only be built through [`GrantSpec::new`], which refuses a
//! `cluster-admin` grant at namespace scope.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// A role a grant gives, each bound to the built-in ClusterRole of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    View,
    Edit,
    Admin,
    ClusterAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::View, Role::Edit, Role::Admin, Role::ClusterAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Edit => "edit",
            Role::Admin => "admin",
            Role::ClusterAdmin => "cluster-admin",
        }
    }

    /// The built-in Kubernetes ClusterRole the binding refers to.
    pub fn cluster_role(self) -> &'static str {
        self.as_str()
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid DNS-1123 label: `a-z0-9-`, starting and ending alphanumeric, 1 to 63
/// characters. The only way to get one is [`Namespace::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Namespace(String);

impl Namespace {
    pub const MAX_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Namespace, NamespaceError> {
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(NamespaceError::Empty);
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(NamespaceError::TooLong(bytes.len()));
        }
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if !bytes.iter().all(|&b| allowed(b)) {
            return Err(NamespaceError::InvalidCharacter);
        }
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(NamespaceError::BadEdge);
        }
        Ok(Namespace(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Namespace::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a DNS-1123 label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 63 characters (got {0})")]
    TooLong(usize),
    #[error("may contain only lowercase letters a-z, digits 0-9 and '-'")]
    InvalidCharacter,
    #[error("must start and end with a lowercase letter or digit")]
    BadEdge,
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Cluster,
    Namespace(Namespace),
}

impl Scope {
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Cluster => ScopeKind::Cluster,
            Scope::Namespace(_) => ScopeKind::Namespace,
        }
    }

    pub fn namespace(&self) -> Option<&Namespace> {
        match self {
            Scope::Cluster => None,
            Scope::Namespace(ns) => Some(ns),
        }
    }
}

/// The wire name of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    Cluster,
    Namespace,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Cluster => "cluster",
            ScopeKind::Namespace => "namespace",
        }
    }

    pub fn parse(s: &str) -> Option<ScopeKind> {
        match s {
            "cluster" => Some(ScopeKind::Cluster),
            "namespace" => Some(ScopeKind::Namespace),
            _ => None,
        }
    }
}

/// A validated email address, normalised (trimmed, ASCII lower case).
///
/// Deliberately modest: ASCII only, one `@`, a non-empty local part, a domain
/// with a dot, no whitespace or control characters, at most 254 bytes.
/// ASCII only because an email is an identity here: Unicode case folding and
/// look-alikes map distinct addresses onto one (the Kelvin sign `\u{212A}`
/// lower-cases to `k`), and internationalised domains arrive as punycode
/// (`xn--…`) from identity providers anyway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(s: &str) -> Option<Email> {
        let s = s.trim();
        if !s.is_ascii() {
            return None;
        }
        let s = s.to_ascii_lowercase();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return None;
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (local, domain) = s.split_once('@')?;
        if local.is_empty() || domain.contains('@') || domain.len() < 3 {
            return None;
        }
        let labels_ok = domain.split('.').all(|l| !l.is_empty());
        if !domain.contains('.') || !labels_ok {
            return None;
        }
        Some(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).ok_or_else(|| serde::de::Error::custom("not an email address"))
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a grant gives, validated: one role at one scope for one member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantSpec {
    email: Email,
    role: Role,
    scope: Scope,
}

impl GrantSpec {
    /// The one place the role × scope rule lives: `cluster-admin` is full
    /// control of the cluster, which a namespace binding cannot give.
    pub fn new(email: Email, role: Role, scope: Scope) -> Result<GrantSpec, ApiError> {
        if role == Role::ClusterAdmin && matches!(scope, Scope::Namespace(_)) {
            return Err(ApiError::validation(
                "role",
                "cluster-admin is full control of the cluster and can only be granted at cluster scope",
            ));
        }
        Ok(GrantSpec { email, role, scope })
    }

    pub fn email(&self) -> &Email {
        &self.email
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// A stable fingerprint of (member, role, scope, namespace): two specs are
    /// exact duplicates iff their fingerprints are equal.
    pub fn fingerprint(&self) -> String {
        let ns = self.scope.namespace().map(Namespace::as_str).unwrap_or("");
        crate::ids::digest_hex(&[self.email.as_str(), self.role.as_str(), self.scope.kind().as_str(), ns])[..32]
            .to_owned()
    }
}

/// The reconcile status of a grant as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Pending,
    Applied,
    Failed,
    ClusterOffline,
}

/// What the agent last reported for a grant. Absent means nothing yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Observed {
    Applied { at: u64 },
    Failed { at: u64, error: String },
}

/// The status a grant shows: a pure function of what the agent reported and
/// whether the agent is connected. An offline cluster shows every grant that is
/// not known to be applied as `cluster_offline`.
pub fn display_status(observed: Option<&Observed>, agent_online: bool) -> (GrantStatus, Option<&str>) {
    match (observed, agent_online) {
        (Some(Observed::Applied { .. }), _) => (GrantStatus::Applied, None),
        (_, false) => (GrantStatus::ClusterOffline, None),
        (Some(Observed::Failed { error, .. }), true) => (GrantStatus::Failed, Some(error.as_str())),
        (None, true) => (GrantStatus::Pending, None),
    }
}

/// The kind of a cluster. Sandbox clusters do not support Cluster Access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterKind {
    Standard,
    Sandbox,
}

/// A member's standing in the organisation's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Invited by an admin, has not signed in yet.
    Invited,
    /// Has signed in through SSO and is not deactivated.
    Active,
    /// Deactivated by an admin: may do nothing, holds no new grants.
    Deactivated,
}

/// An organisation role, from the SSO identity's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Admin,
    Member,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_edge_cases() {
        let ok = ["a", "0", "team-a", "a-b-c", "0abc9", &"a".repeat(63), "x1-2-3y"];
        for s in ok {
            assert_eq!(Namespace::parse(s).map(|n| n.as_str().to_owned()), Ok(s.to_owned()), "{s}");
        }
        let bad: &[(&str, NamespaceError)] = &[
            ("", NamespaceError::Empty),
            (&"a".repeat(64), NamespaceError::TooLong(64)),
            ("Team-a", NamespaceError::InvalidCharacter),
            ("TEAM", NamespaceError::InvalidCharacter),
            ("-team", NamespaceError::BadEdge),
            ("team-", NamespaceError::BadEdge),
            ("-", NamespaceError::BadEdge),
            ("team.a", NamespaceError::InvalidCharacter),
            ("team_a", NamespaceError::InvalidCharacter),
            ("team a", NamespaceError::InvalidCharacter),
            (" team", NamespaceError::InvalidCharacter),
            ("tëam", NamespaceError::InvalidCharacter),
            ("团队", NamespaceError::InvalidCharacter),
            ("team\n", NamespaceError::InvalidCharacter),
            ("a/b", NamespaceError::InvalidCharacter),
            ("..", NamespaceError::InvalidCharacter),
        ];
        for (s, want) in bad {
            assert_eq!(Namespace::parse(s).as_ref(), Err(want), "{s:?}");
        }
        // 63 multi-byte characters are well over 63 bytes: refused either way.
        assert!(Namespace::parse(&"é".repeat(40)).is_err());
    }

    #[test]
    fn role_scope_matrix() {
        let email = Email::parse("a@example.com").unwrap();
        let ns = Scope::Namespace(Namespace::parse("team-a").unwrap());
        for role in Role::ALL {
            assert!(GrantSpec::new(email.clone(), role, Scope::Cluster).is_ok(), "{role} at cluster");
            let at_ns = GrantSpec::new(email.clone(), role, ns.clone());
            if role == Role::ClusterAdmin {
                let err = at_ns.unwrap_err();
                assert_eq!(err.field(), Some("role"));
            } else {
                assert!(at_ns.is_ok(), "{role} at namespace");
            }
        }
    }

    #[test]
    fn roles_round_trip_and_bind_their_cluster_role() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.cluster_role(), role.as_str());
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert_eq!(Role::parse("View"), None);
        assert_eq!(Role::parse("cluster_admin"), None);
    }

    #[test]
    fn fingerprint_distinguishes_every_field() {
        let e = |s: &str| Email::parse(s).unwrap();
        let ns = |s: &str| Scope::Namespace(Namespace::parse(s).unwrap());
        let specs = [
            GrantSpec::new(e("a@x.io"), Role::View, Scope::Cluster).unwrap(),
            GrantSpec::new(e("b@x.io"), Role::View, Scope::Cluster).unwrap(),
            GrantSpec::new(e("a@x.io"), Role::Edit, Scope::Cluster).unwrap(),
            GrantSpec::new(e("a@x.io"), Role::View, ns("team-a")).unwrap(),
            GrantSpec::new(e("a@x.io"), Role::View, ns("team-b")).unwrap(),
        ];
        let fps: std::collections::HashSet<_> = specs.iter().map(GrantSpec::fingerprint).collect();
        assert_eq!(fps.len(), specs.len());
        let again = GrantSpec::new(e(" A@X.io "), Role::View, Scope::Cluster).unwrap();
        assert_eq!(again.fingerprint(), specs[0].fingerprint(), "email is normalised");
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
        for bad in ["", "alice", "@x.io", "a@", "a@b", "a@@x.io", "a b@x.io", "a@x..io", "a@.io", "a\u{0}@x.io"] {
            assert!(Email::parse(bad).is_none(), "{bad:?} accepted");
        }
        assert!(Email::parse("a@x.io\n").is_some(), "surrounding whitespace is trimmed");
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(260))).is_none());
    }

    #[test]
    fn emails_are_ascii_so_look_alikes_never_fold_onto_real_addresses() {
        // U+212A KELVIN SIGN lower-cases to an ASCII `k`; U+0130 to `i` + a combining dot.
        for look_alike in
            ["\u{212A}im@ex.io", "kim@e\u{212A}.io", "\u{0130}da@ex.io", "ann@ex\u{2024}io", "\u{FF41}@ex.io"]
        {
            assert_eq!(Email::parse(look_alike), None, "{look_alike:?} accepted");
        }
        assert_eq!(Email::parse("KIM@EX.IO").unwrap().as_str(), "kim@ex.io");
        assert_eq!(Email::parse("a@xn--bcher-kva.example").unwrap().as_str(), "a@xn--bcher-kva.example");
    }

    #[test]
    fn status_is_derived_from_report_and_liveness() {
        let applied = Observed::Applied { at: 1 };
        let failed = Observed::Failed { at: 1, error: "namespaces \"x\" not found".into() };
        assert_eq!(display_status(None, true), (GrantStatus::Pending, None));
        assert_eq!(display_status(None, false), (GrantStatus::ClusterOffline, None));
        assert_eq!(display_status(Some(&applied), true), (GrantStatus::Applied, None));
        assert_eq!(display_status(Some(&applied), false), (GrantStatus::Applied, None));
        assert_eq!(display_status(Some(&failed), true), (GrantStatus::Failed, Some("namespaces \"x\" not found")));
        assert_eq!(display_status(Some(&failed), false), (GrantStatus::ClusterOffline, None));
    }
}
