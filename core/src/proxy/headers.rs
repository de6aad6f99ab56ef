//! The request headers the proxy forwards: the client's, minus everything
//! that could carry identity or only describes the client's hop, plus
//! exactly one `Impersonate-User`. A request that carries any
//! `Impersonate-*` header is refused, never cleaned: a client that asks to
//! act as someone else must learn that it cannot.

use std::borrow::Cow;

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

/// A header as the proxy reads it: its name and its value's bytes, borrowed
/// from the request.
pub type Header<'a> = (&'a str, &'a [u8]);

/// A header the proxy sends upstream: its name in lower case (borrowed when
/// the client's already was), its value borrowed.
pub type Forwarded<'a> = (Cow<'a, str>, &'a [u8]);

/// Whether a request asks for a protocol upgrade (`kubectl exec`, `attach`,
/// `port-forward`: SPDY or WebSocket): `Connection` names `upgrade` and an
/// `Upgrade` header is present.
pub fn is_upgrade(headers: &[Header<'_>]) -> bool {
    let connection_upgrade = values(headers, "connection")
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && values(headers, "upgrade").next().is_some()
}

fn values<'a>(headers: &'a [Header<'a>], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).filter_map(|(_, v)| std::str::from_utf8(v).ok())
}

/// `name` in lower case, borrowed when it already is (as hyper gives it).
fn lower(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The headers to send upstream for a request of `user` (names in lower
/// case, values borrowed from `incoming`), or the refusal of a request that
/// carries impersonation headers (named in the refusal, their values never).
pub fn upstream_headers<'a>(incoming: &[Header<'a>], user: &'a str) -> Result<Vec<Forwarded<'a>>, Refusal> {
    const IMPERSONATE: &str = "impersonate-";
    let is_impersonation =
        |name: &str| name.get(..IMPERSONATE.len()).is_some_and(|prefix| prefix.eq_ignore_ascii_case(IMPERSONATE));
    if incoming.iter().any(|(name, _)| is_impersonation(name)) {
        let mut names: Vec<String> = incoming
            .iter()
            .filter(|(name, _)| is_impersonation(name))
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        return Err(Refusal::Impersonation(names.join(", ")));
    }
    // Headers the client's `Connection` names are hop-by-hop too.
    let named: Vec<&str> = values(incoming, "connection")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty() && !token.eq_ignore_ascii_case("upgrade"))
        .collect();
    let mut out: Vec<Forwarded<'a>> = incoming
        .iter()
        .map(|&(name, value)| (lower(name), value))
        .filter(|(name, _)| {
            !REMOVED.contains(&name.as_ref())
                && !is_hop_by_hop(name)
                && !named.iter().any(|n| n.eq_ignore_ascii_case(name))
        })
        .collect();
    if is_upgrade(incoming) {
        out.push((Cow::Borrowed("connection"), b"Upgrade"));
        out.extend(
            incoming
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("upgrade"))
                .map(|&(_, value)| (Cow::Borrowed("upgrade"), value)),
        );
    }
    out.push((Cow::Borrowed(IMPERSONATE_USER), user.as_bytes()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        pairs.iter().map(|&(k, v)| (k, v.as_bytes())).collect()
    }

    fn names<'a>(h: &'a [Forwarded<'a>]) -> Vec<&'a str> {
        h.iter().map(|(n, _)| n.as_ref()).collect()
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
        assert_eq!((out[1].1, out[2].1), (b"Upgrade".as_slice(), b"SPDY/3.1".as_slice()));
        let websocket = headers(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&websocket));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])), "Connection must name it");
        assert!(!is_upgrade(&headers(&[("connection", "upgrade")])), "and Upgrade say what");
    }
}
