//! Spin's `spin-*` request headers: the ones the host adds to every routed
//! request, as Spin's HTTP trigger does (its `headers.rs`), and what becomes
//! of the `spin-*` headers the client sent itself ([`ClientSpinHeaders`]).
//!
//! The host adds `spin-path-info`, `spin-full-url`, `spin-matched-route`,
//! `spin-base-path`, `spin-raw-component-route`, `spin-component-route`,
//! `spin-client-addr` and one `spin-path-match-<name>` per route parameter.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::routes::RouteMatch;

/// What to do with `spin-*` headers that the client itself sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientSpinHeaders {
    /// Keep them, as Spin does (the default): the host's values are added
    /// after the client's, so the header then has two values, the client's
    /// first. A component must read the last value to get the host's.
    #[default]
    KeepLikeSpin,
    /// Remove them, so a client cannot forge `spin-path-match-*` and the like:
    /// stricter than Spin, opted into where a component should never see
    /// them.
    Strip,
}

/// Adds Spin's `spin-*` headers for `route` to `headers`, after dealing with
/// the client's own as `client_spin_headers` says. `full_url` is the request's
/// absolute URL (`spin-full-url`).
pub(crate) fn add_spin_headers(
    headers: &mut HeaderMap,
    route: &RouteMatch,
    full_url: &str,
    client_addr: SocketAddr,
    client_spin_headers: ClientSpinHeaders,
) {
    if client_spin_headers == ClientSpinHeaders::Strip {
        let forged: Vec<HeaderName> =
            headers.keys().filter(|name| name.as_str().starts_with("spin-")).cloned().collect();
        for name in forged {
            headers.remove(&name);
        }
    }
    let mut add = |name: String, value: &str| {
        // As Spin, a name or value that is not a valid header is skipped.
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    };
    add("spin-path-info".into(), &route.path_info);
    add("spin-full-url".into(), full_url);
    add("spin-matched-route".into(), &route.based_route);
    add("spin-base-path".into(), "/");
    add("spin-raw-component-route".into(), &route.raw_route);
    add("spin-component-route".into(), &route.component_route);
    add("spin-client-addr".into(), &client_addr.to_string());
    for (name, value) in &route.params {
        add(spin_path_match_header(name), value);
    }
}

/// `spin-path-match-<name>` for route parameter `:name`, `_` becoming `-`.
pub fn spin_path_match_header(param: &str) -> String {
    format!("spin-path-match-{}", param.replace('_', "-").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Router;

    #[test]
    fn path_match_header_names() {
        assert_eq!(spin_path_match_header("cluster_id"), "spin-path-match-cluster-id");
        assert_eq!(spin_path_match_header("id"), "spin-path-match-id");
        assert_eq!(spin_path_match_header("Member_ID"), "spin-path-match-member-id");
    }

    const FULL_URL: &str = "http://127.0.0.1:3000/clusters/c-1/grants/g_2?x=1";

    /// The headers of a request to `/clusters/c-1/grants/g_2` whose client
    /// sent its own `spin-path-match-cluster-id` and `spin-full-url`, once
    /// the host has added Spin's in `mode`.
    fn request_headers(mode: ClientSpinHeaders) -> HeaderMap {
        let router = Router::build([("/clusters/:cluster_id/grants/:grant_id", "main")]);
        let route = router.route("/clusters/c-1/grants/g_2").expect("matches");
        let mut headers = HeaderMap::new();
        headers.append("spin-path-match-cluster-id", HeaderValue::from_static("forged"));
        headers.append("spin-full-url", HeaderValue::from_static("http://evil/"));
        headers.append("x-custom", HeaderValue::from_static("kept"));
        add_spin_headers(&mut headers, &route, FULL_URL, SocketAddr::from(([127, 0, 0, 1], 4321)), mode);
        headers
    }

    fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
        headers.get_all(name).iter().map(|v| v.to_str().expect("ASCII").to_string()).collect()
    }

    #[test]
    fn the_default_keeps_client_headers_like_spin() {
        assert_eq!(ClientSpinHeaders::default(), ClientSpinHeaders::KeepLikeSpin);
    }

    #[test]
    fn kept_client_headers_come_before_the_hosts() {
        let headers = request_headers(ClientSpinHeaders::KeepLikeSpin);
        assert_eq!(values(&headers, "spin-path-match-cluster-id"), ["forged", "c-1"]);
        assert_eq!(values(&headers, "spin-full-url"), ["http://evil/", FULL_URL]);
        assert_eq!(values(&headers, "spin-path-match-grant-id"), ["g_2"]);
        assert_eq!(values(&headers, "x-custom"), ["kept"]);
    }

    #[test]
    fn strict_mode_leaves_only_the_hosts_values() {
        let headers = request_headers(ClientSpinHeaders::Strip);
        assert_eq!(values(&headers, "spin-path-match-cluster-id"), ["c-1"]);
        assert_eq!(values(&headers, "spin-full-url"), [FULL_URL]);
        assert_eq!(values(&headers, "spin-path-match-grant-id"), ["g_2"]);
        assert_eq!(values(&headers, "spin-client-addr"), ["127.0.0.1:4321"]);
        assert_eq!(values(&headers, "x-custom"), ["kept"]);
    }
}
