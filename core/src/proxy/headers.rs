//! The request headers the proxy forwards: the client's, minus everything
//! that could carry identity or only describes the client's hop, plus
//! exactly one `Impersonate-User`. A request that carries any
//! `Impersonate-*` header is refused, never cleaned: a client that asks to
//! act as someone else must learn that it cannot.

use super::status::Refusal;

/// The header the proxy names the member in.
pub const IMPERSONATE_USER: &str = "impersonate-user";

/// Headers removed from every request besides the hop-by-hop ones: the
/// client's credential, and what names the proxy's own host or the client's
/// address.
const REMOVED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

/// The hop-by-hop headers of RFC 9110 §7.6.1, removed in both directions (an
/// upgrade keeps `Upgrade` and a `Connection: Upgrade` of its own, see
/// [`upstream_headers`]).
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// Whether `name` (lower-case) is a hop-by-hop header: one that describes a
/// single connection and is never forwarded as it is.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Whether a request asks for a protocol upgrade (`kubectl exec`, `attach`,
/// `port-forward`: SPDY or WebSocket): `Connection` names `upgrade` and an
/// `Upgrade` header is present.
pub fn is_upgrade(headers: &[(String, Vec<u8>)]) -> bool {
    let connection_upgrade = values(headers, "connection")
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && values(headers, "upgrade").next().is_some()
}

fn values<'a>(headers: &'a [(String, Vec<u8>)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).filter_map(|(_, v)| std::str::from_utf8(v).ok())
}

/// The headers to send upstream for a request of `user`, or the refusal of
/// a request that carries impersonation headers (named in the refusal, their
/// values never).
pub fn upstream_headers(incoming: &[(String, Vec<u8>)], user: &str) -> Result<Vec<(String, Vec<u8>)>, Refusal> {
    let mut impersonation: Vec<String> = incoming
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| name.starts_with("impersonate-"))
        .collect();
    if !impersonation.is_empty() {
        impersonation.sort();
        impersonation.dedup();
        return Err(Refusal::Impersonation(impersonation.join(", ")));
    }
    let upgrade = is_upgrade(incoming);
    // Headers the client's `Connection` names are hop-by-hop too.
    let named: Vec<String> = values(incoming, "connection")
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty() && token != "upgrade")
        .collect();
    let mut out: Vec<(String, Vec<u8>)> = incoming
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !REMOVED.contains(&name.as_str()) && !is_hop_by_hop(&name) && !named.contains(&name)
        })
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect();
    if upgrade {
        out.push(("connection".into(), b"Upgrade".to_vec()));
        out.extend(values(incoming, "upgrade").map(|v| ("upgrade".to_owned(), v.as_bytes().to_vec())));
    }
    out.push((IMPERSONATE_USER.into(), user.as_bytes().to_vec()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    fn names(h: &[(String, Vec<u8>)]) -> Vec<&str> {
        h.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn every_impersonation_header_is_refused_by_name() {
        for name in [
            "Impersonate-User",
            "impersonate-group",
            "Impersonate-Uid",
            "Impersonate-Extra-Scopes",
            "IMPERSONATE-EXTRA-reason",
        ] {
            let incoming = headers(&[("accept", "application/json"), (name, "system:masters")]);
            let err = upstream_headers(&incoming, "lanyard:dev@ex.io").unwrap_err();
            assert_eq!(err.code(), 403, "{name}");
            assert!(err.to_string().contains(&name.to_ascii_lowercase()), "{err}");
            assert!(!err.to_string().contains("system:masters"), "values are never echoed: {err}");
        }
    }

    #[test]
    fn the_credential_the_client_hop_and_the_forwarding_headers_go_and_one_user_comes() {
        let incoming = headers(&[
            ("Authorization", "Bearer secret-token"),
            ("Host", "proxy.example:8443"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("Forwarded", "for=10.0.0.1"),
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("X-Custom-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Accept", "application/json"),
            ("User-Agent", "kubectl/v1.37.2"),
        ]);
        let out = upstream_headers(&incoming, "lanyard:dev@ex.io").unwrap();
        assert_eq!(names(&out), ["accept", "user-agent", "impersonate-user"]);
        assert_eq!(out[2].1, b"lanyard:dev@ex.io");
        assert!(!out.iter().any(|(_, v)| v == b"Bearer secret-token"));
    }

    #[test]
    fn upgrades_keep_their_protocol() {
        let spdy = headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
        ]);
        assert!(is_upgrade(&spdy));
        let out = upstream_headers(&spdy, "lanyard:dev@ex.io").unwrap();
        assert_eq!(names(&out), ["x-stream-protocol-version", "connection", "upgrade", "impersonate-user"]);
        assert_eq!((out[1].1.as_slice(), out[2].1.as_slice()), (b"Upgrade".as_slice(), b"SPDY/3.1".as_slice()));
        let websocket = headers(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&websocket));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])), "Connection must name it");
        assert!(!is_upgrade(&headers(&[("connection", "upgrade")])), "and Upgrade say what");
    }
}
