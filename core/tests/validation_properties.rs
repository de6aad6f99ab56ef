//! Validation, as properties over generated input (proptest): what each
//! parser accepts is exactly its rule, what it returns parses again to the
//! same value, and the JSON a grant request arrives as is refused or
//! accepted as a whole, never half-read.

use lanyard_core::ids::{ClusterId, GrantId, MemberId};
use lanyard_core::model::{DNS_LABEL_MAX_LEN, Email, GrantSpec, Namespace, Role, Scope, ScopeKind};
use proptest::prelude::*;

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= DNS_LABEL_MAX_LEN
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_namespace_is_exactly_a_dns_label(s in "\\PC{0,70}|[a-z0-9-]{0,70}") {
        prop_assert_eq!(Namespace::parse(&s).is_ok(), is_dns_label(&s), "{:?}", s);
    }

    #[test]
    fn every_dns_label_is_a_namespace(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
        let ns = Namespace::parse(&s).unwrap();
        prop_assert_eq!(ns.as_str(), s.as_str());
    }

    #[test]
    fn an_email_is_normalised_once_and_for_all(s in "\\PC{0,40}|[ \\tA-Za-z0-9.+_-]{1,20}@[A-Za-z0-9-]{1,10}(\\.[A-Za-z0-9-]{1,10}){0,3}[ \\t]?") {
        if let Some(e) = Email::parse(&s) {
            let text = e.as_str();
            prop_assert!(text.is_ascii() && !text.chars().any(|c| c.is_whitespace() || c.is_control()), "{:?}", text);
            prop_assert_eq!(text.to_ascii_lowercase(), text, "lower case");
            prop_assert!(text.len() <= Email::MAX_LEN);
            prop_assert_eq!(text.matches('@').count(), 1);
            prop_assert_eq!(Email::parse(text), Some(e.clone()), "parsing the stored form gives it back");
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(serde_json::from_str::<Email>(&json).unwrap(), e);
        }
    }

    #[test]
    fn ids_are_their_prefix_and_24_hex_digits(s in "[cgm]_[0-9a-f]{24}|\\PC{0,30}|[cgm]_[0-9a-fA-F]{20,28}") {
        let well_formed = |prefix: &str| {
            s.strip_prefix(prefix).is_some_and(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        };
        prop_assert_eq!(ClusterId::parse(&s).is_some(), well_formed("c_"), "{:?}", s);
        prop_assert_eq!(GrantId::parse(&s).is_some(), well_formed("g_"), "{:?}", s);
        prop_assert_eq!(MemberId::parse(&s).is_some(), well_formed("m_"), "{:?}", s);
    }

    #[test]
    fn a_grant_spec_is_any_role_at_any_scope_but_cluster_admin_in_a_namespace(
        role in prop::sample::select(vec![Role::View, Role::Edit, Role::Admin, Role::ClusterAdmin]),
        ns in prop::option::of("[a-z]{1,10}"),
    ) {
        let scope = ns.map_or(Scope::Cluster, |n| Scope::Namespace(Namespace::parse(&n).unwrap()));
        let namespaced = matches!(scope, Scope::Namespace(_));
        let spec = GrantSpec::new(Email::parse("dev@ex.io").unwrap(), role, scope);
        prop_assert_eq!(spec.is_ok(), !(role == Role::ClusterAdmin && namespaced));
        prop_assert_eq!(Role::parse(role.as_str()), Some(role));
    }
}

#[test]
fn role_and_scope_names_round_trip() {
    for kind in [ScopeKind::Cluster, ScopeKind::Namespace] {
        assert_eq!(ScopeKind::parse(kind.as_str()), Some(kind));
    }
}
