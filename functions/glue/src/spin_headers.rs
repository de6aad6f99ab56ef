//! Spin's routing headers, read once: the route Spin matched
//! (`spin-matched-route`), its parameters (`spin-path-match-<name>`, `_`
//! spelled `-`) and the URL the client used (`spin-full-url`). The core gets
//! them as fields of its request and never sees a `spin-*` header.
//!
//! Spin keeps `spin-*` headers that a client sent and adds its own value
//! after them, so a header may have several values and only the last is
//! Spin's. Only the parameters that the matched route declares are read:
//! Spin sets `spin-path-match-*` for those alone, so any other can only have
//! come from the client.

use std::collections::BTreeMap;

/// What Spin's routing says about a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// The matched route template.
    pub route: Option<String>,
    /// Its parameters' values.
    pub params: BTreeMap<String, String>,
    /// `scheme://authority` of `spin-full-url`, if it is a clean HTTP(S) origin.
    pub origin: Option<String>,
}

/// The last value of header `name` (Spin's, after any the client sent).
fn last<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Read Spin's routing from `headers` and remove every `spin-*` header.
pub fn take_routing(headers: &mut Vec<(String, Vec<u8>)>) -> Routing {
    let route = last(headers, "spin-matched-route").map(str::to_owned);
    let params = route
        .iter()
        .flat_map(|r| r.split('/'))
        .filter_map(|segment| segment.strip_prefix(':'))
        .filter_map(|name| {
            let value = last(headers, &format!("spin-path-match-{}", name.replace('_', "-")))?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    let origin = last(headers, "spin-full-url").and_then(origin_of);
    headers.retain(|(name, _)| !name.to_ascii_lowercase().starts_with("spin-"));
    Routing { route, params, origin }
}

/// `scheme://authority` of an absolute HTTP(S) URL whose authority is plain
/// (letters, digits, `.-:[]`); anything else has no usable origin.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    (matches!(scheme, "http" | "https") && clean(authority)).then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn the_router_wins_and_only_declared_parameters_count() {
        let mut h = headers(&[
            ("authorization", "Bearer x"),
            ("spin-path-match-cluster-id", "c_forged"),
            ("spin-matched-route", "/x/:cluster_id/:forged"),
            ("spin-path-match-member-id", "m_forged"),
            ("spin-full-url", "https://evil.example/"),
            ("spin-matched-route", "/api/v1/clusters/:cluster_id/access/grants/:grant_id"),
            ("spin-path-match-cluster-id", "c_1"),
            ("spin-path-match-grant-id", "g_1"),
            ("spin-full-url", "http://127.0.0.1:3000/api/v1/clusters/c_1/access/grants/g_1"),
        ]);
        let routing = take_routing(&mut h);
        assert_eq!(routing.route.as_deref(), Some("/api/v1/clusters/:cluster_id/access/grants/:grant_id"));
        let params: Vec<(&str, &str)> = routing.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(params, [("cluster_id", "c_1"), ("grant_id", "g_1")], "the router's values, declared only");
        assert_eq!(routing.origin.as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(h, headers(&[("authorization", "Bearer x")]), "no spin-* header reaches the core");
    }

    #[test]
    fn no_route_no_parameters_and_odd_urls_no_origin() {
        let mut h = headers(&[("spin-path-match-cluster-id", "c_1"), ("spin-full-url", "https://a b/")]);
        assert_eq!(take_routing(&mut h), Routing::default());
        for bad in ["ftp://x/", "https://user@x/", "https:///", "x"] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }
}
