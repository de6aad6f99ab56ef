//! Domain types: roles, scopes, grants, clusters and members.
//!
//! Types make bad states unrepresentable: a [`Namespace`] is a validated
//! DNS-1123 label, a [`Scope::Namespace`] carries one, a [`Role`] is an enum, and
//! a [`GrantSpec`] can only be built through [`GrantSpec::new`], which refuses a
//! `cluster-admin` grant at namespace scope.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, MemberId};

/// A role a grant gives, each bound to the built-in ClusterRole of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read most objects in the scope (not secrets).
    View,
    /// Read and write most objects in the scope.
    Edit,
    /// Everything in a namespace, including its RBAC.
    Admin,
    /// Full control of the cluster (cluster scope only).
    ClusterAdmin,
}

impl Role {
    /// Every role, least to most.
    pub const ALL: [Role; 4] = [Role::View, Role::Edit, Role::Admin, Role::ClusterAdmin];

    /// The role's wire name.
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

    /// The role of a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Check that `s` is a DNS-1123 label: `a-z0-9-`, starting and ending
/// alphanumeric, 1 to 63 characters.
fn check_dns_label(s: &str) -> Result<(), LabelError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(LabelError::Empty);
    }
    if bytes.len() > DNS_LABEL_MAX_LEN {
        return Err(LabelError::TooLong(bytes.len()));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if !bytes.iter().all(|&b| allowed(b)) {
        return Err(LabelError::InvalidCharacter);
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(LabelError::BadEdge);
    }
    Ok(())
}

/// The longest DNS-1123 label.
pub const DNS_LABEL_MAX_LEN: usize = 63;

macro_rules! dns_label_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `s` if it is a DNS-1123 label, or why not.
            pub fn parse(s: &str) -> Result<$name, LabelError> {
                check_dns_label(s).map(|()| $name(s.to_owned()))
            }

            /// The label as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

dns_label_type!(
    /// A Kubernetes namespace name: a valid DNS-1123 label. The only way to
    /// get one is [`Namespace::parse`] (or deserializing, which parses).
    Namespace
);
dns_label_type!(
    /// A cluster's name in its organisation: a DNS-1123 label, unique among
    /// the organisation's live clusters.
    ClusterName
);

/// Why a string is not a DNS-1123 label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Nothing at all.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`DNS_LABEL_MAX_LEN`] bytes (the length it has).
    #[error("must be at most 63 characters (got {0})")]
    TooLong(usize),
    /// A character other than `a-z`, `0-9` and `-`.
    #[error("may contain only lowercase letters a-z, digits 0-9 and '-'")]
    InvalidCharacter,
    /// Starts or ends with `-`.
    #[error("must start and end with a lowercase letter or digit")]
    BadEdge,
}

/// Where a grant applies. On the wire and in the store it is two fields,
/// `"scope": "cluster"|"namespace"` and `"namespace"` (only with the
/// latter), which a containing struct flattens in (`#[serde(flatten)]`);
/// a namespace scope without its namespace, or a cluster scope with one, does
/// not deserialize.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ScopeFields", into = "ScopeFields")]
pub enum Scope {
    /// The whole cluster: a ClusterRoleBinding.
    Cluster,
    /// One namespace: a RoleBinding in it.
    Namespace(Namespace),
}

impl Scope {
    /// The scope's wire name.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Cluster => ScopeKind::Cluster,
            Scope::Namespace(_) => ScopeKind::Namespace,
        }
    }

    /// The namespace of a namespace scope.
    pub fn namespace(&self) -> Option<&Namespace> {
        match self {
            Scope::Cluster => None,
            Scope::Namespace(ns) => Some(ns),
        }
    }
}

/// The serialized form of a [`Scope`].
#[derive(Serialize, Deserialize)]
struct ScopeFields {
    scope: ScopeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<Namespace>,
}

impl TryFrom<ScopeFields> for Scope {
    type Error = &'static str;

    fn try_from(f: ScopeFields) -> Result<Scope, Self::Error> {
        match (f.scope, f.namespace) {
            (ScopeKind::Cluster, None) => Ok(Scope::Cluster),
            (ScopeKind::Namespace, Some(ns)) => Ok(Scope::Namespace(ns)),
            (ScopeKind::Cluster, Some(_)) => Err("a cluster scope has no namespace"),
            (ScopeKind::Namespace, None) => Err("a namespace scope names its namespace"),
        }
    }
}

impl From<Scope> for ScopeFields {
    fn from(scope: Scope) -> ScopeFields {
        match scope {
            Scope::Cluster => ScopeFields { scope: ScopeKind::Cluster, namespace: None },
            Scope::Namespace(ns) => ScopeFields { scope: ScopeKind::Namespace, namespace: Some(ns) },
        }
    }
}

/// The wire name of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// `cluster`.
    Cluster,
    /// `namespace`.
    Namespace,
}

impl ScopeKind {
    /// Every scope kind.
    pub const ALL: [ScopeKind; 2] = [ScopeKind::Cluster, ScopeKind::Namespace];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Cluster => "cluster",
            ScopeKind::Namespace => "namespace",
        }
    }

    /// The scope kind of a wire name.
    pub fn parse(s: &str) -> Option<ScopeKind> {
        ScopeKind::ALL.into_iter().find(|k| k.as_str() == s)
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
    /// The longest email address.
    pub const MAX_LEN: usize = 254;

    /// `s` as an email address (trimmed, lower case), if it is one. Only
    /// ASCII whitespace is trimmed (a non-ASCII space around an address is
    /// refused like one inside it), and the limit counts `s` as given.
    pub fn parse(s: &str) -> Option<Email> {
        if s.len() > Self::MAX_LEN {
            return None;
        }
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        if !s.is_ascii() {
            return None;
        }
        let s = s.to_ascii_lowercase();
        if s.is_empty() {
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

    /// The address as text.
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
    pub fn new(email: Email, role: Role, scope: Scope) -> Result<GrantSpec, GrantSpecError> {
        if role == Role::ClusterAdmin && matches!(scope, Scope::Namespace(_)) {
            return Err(GrantSpecError::ClusterAdminInNamespace);
        }
        Ok(GrantSpec { email, role, scope })
    }

    /// The member's email.
    pub fn email(&self) -> &Email {
        &self.email
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The scope.
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

/// What a grant says, whoever shows it: on which cluster, for which member,
/// which role at which scope. The stored grant ([`crate::records::GrantRecord`])
/// and the grant on the wire ([`crate::wire::Grant`]) both carry it, flattened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantTerms {
    /// The cluster it is on.
    pub cluster_id: ClusterId,
    /// The member it is for.
    pub member_id: MemberId,
    /// The member's email when it was granted (their Kubernetes user derives from it).
    pub email: Email,
    /// The role it gives.
    pub role: Role,
    /// Where: `"scope"` and, for a namespace, `"namespace"`.
    #[serde(flatten)]
    pub scope: Scope,
}

/// Why a role cannot be granted at a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantSpecError {
    /// `cluster-admin` asked for at namespace scope.
    #[error("cluster-admin is full control of the cluster and can only be granted at cluster scope")]
    ClusterAdminInNamespace,
}

/// The reconcile status of a grant as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// The agent has not applied it yet.
    Pending,
    /// Its binding is in place.
    Applied,
    /// The agent could not apply it (the grant's `error` says why).
    Failed,
    /// The cluster's agent is not connected.
    ClusterOffline,
}

impl GrantStatus {
    /// The status's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Applied => "applied",
            GrantStatus::Failed => "failed",
            GrantStatus::ClusterOffline => "cluster_offline",
        }
    }
}

/// What the agent last reported for a grant. Absent means nothing yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Observed {
    /// The binding was applied.
    Applied {
        /// Unix seconds of the report.
        at: u64,
    },
    /// The binding could not be applied.
    Failed {
        /// Unix seconds of the report.
        at: u64,
        /// Why, as Kubernetes said it.
        error: String,
    },
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
    /// A cluster that supports Cluster Access.
    Standard,
    /// A sandbox: no Cluster Access.
    Sandbox,
}

impl ClusterKind {
    /// The kind's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterKind::Standard => "standard",
            ClusterKind::Sandbox => "sandbox",
        }
    }
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
    /// Manages access, clusters and the directory.
    Admin,
    /// Uses the access they are granted.
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
        let bad: &[(&str, LabelError)] = &[
            ("", LabelError::Empty),
            (&"a".repeat(64), LabelError::TooLong(64)),
            ("Team-a", LabelError::InvalidCharacter),
            ("TEAM", LabelError::InvalidCharacter),
            ("-team", LabelError::BadEdge),
            ("team-", LabelError::BadEdge),
            ("-", LabelError::BadEdge),
            ("team.a", LabelError::InvalidCharacter),
            ("team_a", LabelError::InvalidCharacter),
            ("team a", LabelError::InvalidCharacter),
            (" team", LabelError::InvalidCharacter),
            ("tëam", LabelError::InvalidCharacter),
            ("团队", LabelError::InvalidCharacter),
            ("team\n", LabelError::InvalidCharacter),
            ("a/b", LabelError::InvalidCharacter),
            ("..", LabelError::InvalidCharacter),
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
                assert_eq!(at_ns.unwrap_err(), GrantSpecError::ClusterAdminInNamespace);
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
    fn emails_are_trimmed_of_ascii_whitespace_only_and_measured_as_given() {
        assert_eq!(Email::parse("\t a@x.io\r\n\x0c").unwrap().as_str(), "a@x.io");
        // str::trim took these away, so "\u{3000}a@x.io" was stored as a@x.io.
        for space in ["\u{3000}", "\u{a0}", "\u{2003}", "\u{85}", "\u{feff}", "\u{b}"] {
            assert_eq!(Email::parse(&format!("{space}a@x.io")), None, "{space:?} before");
            assert_eq!(Email::parse(&format!("a@x.io{space}")), None, "{space:?} after");
        }
        let longest = format!("{}@x.io", "a".repeat(Email::MAX_LEN - 5));
        assert!(Email::parse(&longest).is_some());
        assert!(Email::parse(&format!(" {longest}")).is_none(), "the limit counts the address as sent");
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
    fn wire_names_are_the_serde_names() {
        for s in [GrantStatus::Pending, GrantStatus::Applied, GrantStatus::Failed, GrantStatus::ClusterOffline] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for k in [ClusterKind::Standard, ClusterKind::Sandbox] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for k in ScopeKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(ScopeKind::parse(k.as_str()), Some(k));
        }
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
