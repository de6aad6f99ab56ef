//! Outbound HTTP from components, allowed exactly as Spin allows it: by the
//! component's `allowed_outbound_hosts`.
//!
//! Each entry is `scheme://host[:port]`, as Spin reads it: the scheme is one
//! word or `*`; the host is a name, `*`, `*.domain` (any subdomain), an IP
//! address or a CIDR range; the port is a number, `*`, a range `a..b` (end
//! exclusive), or omitted for the scheme's well-known port (`http` 80,
//! `https` 443); no path. Entries may be templates over the application
//! variables (`"https://{{ idp_host }}"`), resolved once at start-up. An empty
//! list allows nothing. Spin's `self` (the app's own origin) is not offered:
//! a manifest that uses it is refused at start-up rather than allowed more or
//! less than Spin would.
//!
//! A request that no entry allows fails with `HttpRequestDenied` before any
//! connection is made, as in Spin. Allowed requests are sent by wasmtime's
//! default client (rustls with the webpki roots) with the guest's timeouts,
//! each capped at [`MAX_TIMEOUT`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// The longest connect, first-byte or between-bytes timeout a guest gets.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an `allowed_outbound_hosts` entry cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("allowed_outbound_hosts entry {entry:?}: {reason}")]
pub struct AllowedHostError {
    entry: String,
    reason: String,
}

/// One component's `allowed_outbound_hosts`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    ports: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Subdomain(String),
    Exact(String),
    Network { addr: IpAddr, prefix: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    One(u16),
    Range(u16, u16),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" => Some(6379),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHosts {
    /// Parse resolved entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, AllowedHostError> {
        let entries = entries.iter().map(|e| AllowedHost::parse(e.as_ref())).collect::<Result<_, _>>()?;
        Ok(AllowedHosts { entries })
    }

    /// Whether a request to `scheme://host[:port]` is allowed.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Some(port) = port.or_else(|| well_known_port(scheme)) else { return false };
        self.entries.iter().any(|e| e.allows(scheme, host, port))
    }

    /// Whether nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<AllowedHost, AllowedHostError> {
        let fail = |reason: &str| AllowedHostError { entry: entry.to_owned(), reason: reason.to_owned() };
        let text = entry.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| fail("has no scheme; write <scheme>://<host>[:<port>], e.g. https://idp.example.com"))?;
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => Some(s.to_owned()),
            _ => return Err(fail("the scheme must be letters or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') && !looks_like_cidr(rest) {
            return Err(fail("has a path, which allowed_outbound_hosts does not take"));
        }
        let (host, port) = split_port(rest);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host == "*" {
            HostPattern::Any
        } else if host == "self" || host == "self.alt" {
            return Err(fail("`self` is not supported by this host"));
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                return Err(fail("a wildcard is allowed only as the first label"));
            }
            HostPattern::Subdomain(format!(".{domain}"))
        } else if host.contains('*') {
            return Err(fail("a wildcard is allowed only as the first label"));
        } else if let Some((addr, prefix)) = host.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| fail("a CIDR range needs an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| fail("bad CIDR prefix length"))?;
            HostPattern::Network { addr, prefix }
        } else if host.is_empty() {
            return Err(fail("has no host"));
        } else {
            HostPattern::Exact(host.to_owned())
        };
        let ports = match port {
            None | Some("") => match scheme.as_deref().and_then(well_known_port) {
                Some(p) => PortPattern::One(p),
                None => return Err(fail("has no port, and its scheme has no well-known one")),
            },
            Some("*") => PortPattern::Any,
            Some(range) if range.contains("..") => {
                let (a, b) = range.split_once("..").unwrap_or_default();
                match (a.parse(), b.parse()) {
                    (Ok(a), Ok(b)) => PortPattern::Range(a, b),
                    _ => return Err(fail("a port range is <start>..<end>")),
                }
            }
            Some(p) => PortPattern::One(p.parse().map_err(|_| fail("the port is not a number"))?),
        };
        Ok(AllowedHost { scheme, host, ports })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Network { addr, prefix } => {
                host.parse::<IpAddr>().is_ok_and(|ip| in_network(ip, *addr, *prefix))
            }
        };
        let port_ok = match self.ports {
            PortPattern::Any => true,
            PortPattern::One(p) => p == port,
            PortPattern::Range(a, b) => (a..b).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

fn looks_like_cidr(rest: &str) -> bool {
    let host = split_port(rest).0;
    host.split_once('/').is_some_and(|(a, _)| a.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok())
}

/// `host` and the text after its port colon (IPv6 in brackets keeps its colons).
fn split_port(rest: &str) -> (&str, Option<&str>) {
    if rest.starts_with('[') {
        return match rest.find(']') {
            Some(end) => (&rest[..=end], rest[end + 1..].strip_prefix(':')),
            None => (rest, None),
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The `wasi:http` hooks of one request: Spin's outbound rules.
pub(crate) struct OutboundHttp {
    pub(crate) allowed: Arc<AllowedHosts>,
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let allowed = uri.host().is_some_and(|host| self.allowed.allows(&scheme, host, uri.port_u16()));
        if !allowed {
            tracing::warn!(
                target: "lanyard_host::outbound",
                "refused outbound request to {scheme}://{}: not in the component's allowed_outbound_hosts",
                uri.authority().map_or("", |a| a.as_str())
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let cap = |t: Option<Duration>| Some(t.unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT));
        let options = RequestOptions {
            connect_timeout: cap(options.and_then(|o| o.connect_timeout)),
            first_byte_timeout: cap(options.and_then(|o| o.first_byte_timeout)),
            between_bytes_timeout: cap(options.and_then(|o| o.between_bytes_timeout)),
        };
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: (&str, &str, Option<u16>)) -> bool {
        AllowedHosts::parse(entries).unwrap().allows(url.0, url.1, url.2)
    }

    #[test]
    fn entries_allow_what_spin_allows() {
        assert!(allows(&["https://idp.example"], ("https", "idp.example", None)));
        assert!(allows(&["https://idp.example"], ("https", "idp.example", Some(443))));
        assert!(!allows(&["https://idp.example"], ("https", "idp.example", Some(8443))), "the well-known port only");
        assert!(!allows(&["https://idp.example"], ("http", "idp.example", None)), "not another scheme");
        assert!(!allows(&["https://idp.example"], ("https", "evil.example", None)));
        assert!(allows(&["http://127.0.0.1:5556"], ("http", "127.0.0.1", Some(5556))));
        assert!(!allows(&["http://127.0.0.1:5556"], ("http", "127.0.0.1", Some(5557))));
        assert!(allows(&["http://127.0.0.1:*"], ("http", "127.0.0.1", Some(1))));
        assert!(allows(&["http://localhost:5000..5010"], ("http", "localhost", Some(5009))));
        assert!(!allows(&["http://localhost:5000..5010"], ("http", "localhost", Some(5010))), "end exclusive");
        assert!(allows(&["https://*.example.com"], ("https", "a.b.example.com", None)));
        assert!(!allows(&["https://*.example.com"], ("https", "example.com", None)));
        assert!(allows(&["*://10.0.0.0/8:*"], ("http", "10.1.2.3", Some(80))));
        assert!(!allows(&["*://10.0.0.0/8:*"], ("http", "11.1.2.3", Some(80))));
        assert!(allows(&["http://[::1]:8080"], ("http", "[::1]", Some(8080))));
        assert!(allows(&["*://*:*"], ("ftp", "anything", Some(21))));
        assert!(!AllowedHosts::default().allows("https", "idp.example", None), "an empty list allows nothing");
    }

    #[test]
    fn entries_spin_refuses_are_refused() {
        for bad in [
            "idp.example",
            "https://idp.example/path",
            "https://*idp.example",
            "ftp://x",
            "https://self",
            "1http://x",
            "https://x:port",
        ] {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
