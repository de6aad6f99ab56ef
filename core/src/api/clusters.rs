//! Clusters: list, register (the agent credential is made here and shown
//! once), delete, and rotate the agent credential.

use super::{Cx, views};
use crate::authz::Action;
use crate::error::ApiError;
use crate::http::Response;
use crate::ids::{Secret, rfc3339};
use crate::model::{ClusterKind, ClusterName};
use crate::records::ClusterRecord;
use crate::store::clusters::NewCluster;
use crate::wire::{self, RegisterCluster, RotateCredential};

/// The prefix of every agent credential (so a leaked one is recognisable).
pub const AGENT_CREDENTIAL_PREFIX: &str = "lya_";
/// How long the credentials an agent-credential rotation replaces stay valid
/// by default (unless the agent uses the new one first).
pub const PREVIOUS_CREDENTIAL_VALID_SECS: u64 = 60 * 60;
/// The longest an admin may keep replaced agent credentials valid.
pub const MAX_PREVIOUS_CREDENTIAL_VALID_SECS: u64 = 24 * 60 * 60;

/// A proxy URL: `https://host[:port][/path]`, or plain `http` to a loopback
/// address (`localhost`, `127.0.0.0/8`, `[::1]`) for local development.
fn validate_proxy_url(url: &str) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::validation("proxy_url", m.to_owned()));
    // Printable ASCII: a URL percent-encodes anything else, and the limit is
    // then the same in bytes and characters.
    if url.len() > 2048 || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("proxy_url must be a URL of printable ASCII without spaces, at most 2048 characters");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("proxy_url must be an https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("proxy_url must not carry credentials");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) if h.parse::<std::net::Ipv6Addr>().is_ok() => (h, None),
            Some((h, tail)) if h.parse::<std::net::Ipv6Addr>().is_ok() && tail.starts_with(':') => {
                (h, Some(&tail[1..]))
            }
            _ => return bad("proxy_url has a malformed IPv6 address (write it as https://[address]:port)"),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
    if !host_ok {
        return bad("proxy_url has no valid host");
    }
    // Digits only, as URL parsers read a port (u16's parser also takes `+443`
    // and `0443`, which kubectl refuses).
    if let Some(port) = port
        && (port.is_empty()
            || port.starts_with('0')
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return bad("proxy_url has an invalid port");
    }
    match scheme {
        "https" => Ok(()),
        "http" if crate::http::is_loopback_host(host) => Ok(()),
        "http" => bad("proxy_url must use https (plain http is allowed only to a loopback address)"),
        _ => bad("proxy_url must be an https:// URL"),
    }
}

impl Cx<'_> {
    fn new_credential(&self) -> Result<Secret, ApiError> {
        Secret::new(AGENT_CREDENTIAL_PREFIX, self.env.random).map_err(ApiError::unavailable)
    }

    fn cluster_view(&self, c: &ClusterRecord) -> Result<wire::Cluster, ApiError> {
        let beat = self.store.heartbeat(&c.id)?;
        Ok(views::cluster(c, beat.as_ref(), self.env.now, self.config.agent_offline_after()?))
    }

    pub(super) fn list_clusters(&self) -> Result<Response, ApiError> {
        self.authorize(Action::ListClusters)?;
        let clusters = self.store.clusters(self.caller.org())?;
        let clusters = clusters.iter().map(|c| self.cluster_view(c)).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::json(200, &wire::ClusterList { clusters }))
    }

    pub(super) fn register_cluster(&self) -> Result<Response, ApiError> {
        self.authorize(Action::RegisterCluster)?;
        let body: RegisterCluster = self.req.json()?;
        let name = match body.name.as_deref() {
            None | Some("") => return Err(ApiError::validation("name", "name is required")),
            Some(n) => ClusterName::parse(n)
                .map_err(|e| ApiError::validation("name", format!("name must be a DNS-1123 label: it {e}")))?,
        };
        let kind = match body.kind.as_deref() {
            None | Some("standard") => ClusterKind::Standard,
            Some("sandbox") => ClusterKind::Sandbox,
            Some(_) => return Err(ApiError::validation("kind", "kind must be standard or sandbox")),
        };
        let proxy_url = body.proxy_url.ok_or_else(|| ApiError::validation("proxy_url", "proxy_url is required"))?;
        validate_proxy_url(&proxy_url)?;
        if let Some(ca) = &body.ca_pem
            && !crate::records::is_pem_certificates(ca)
        {
            return Err(ApiError::validation("ca_pem", "ca_pem must be PEM-encoded certificates"));
        }
        let credential = self.new_credential()?;
        let new = NewCluster {
            org: self.caller.org(),
            name: &name,
            kind,
            proxy_url: &proxy_url,
            ca_pem: body.ca_pem.as_deref(),
        };
        let record = self.store.register_cluster(new, &credential, self.caller.audit_name(), self.env.now)?;
        let cluster = self.cluster_view(&record)?;
        let body = wire::RegisteredCluster { cluster, agent_credential: credential.expose().to_owned() };
        // The agent credential is shown once and must not be kept by any cache.
        Ok(Response::json(201, &body).no_store())
    }

    pub(super) fn delete_cluster(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::DeleteCluster)?;
        self.store.delete_cluster(&cluster, self.caller.audit_name(), self.env.now)?;
        Ok(Response::no_content())
    }

    pub(super) fn rotate_agent_credential(&self) -> Result<Response, ApiError> {
        let cluster = self.cluster()?;
        self.authorize(Action::RotateAgentCredential)?;
        let body: RotateCredential = self.req.json_or_default()?;
        let max = MAX_PREVIOUS_CREDENTIAL_VALID_SECS;
        let valid_for = match body.previous_valid_for_seconds {
            None => PREVIOUS_CREDENTIAL_VALID_SECS,
            Some(s) => u64::try_from(s).ok().filter(|s| *s <= max).ok_or_else(|| {
                ApiError::validation(
                    "previous_valid_for_seconds",
                    format!("previous_valid_for_seconds must be 0 to {max}; 0 refuses the old credential at once"),
                )
            })?,
        };
        let until = self.env.now.saturating_add(valid_for);
        let credential = self.new_credential()?;
        self.store.rotate_agent_credential(&cluster.id, &credential, self.caller.audit_name(), until, self.env.now)?;
        let body = wire::RotatedCredential {
            agent_credential: credential.expose().to_owned(),
            previous_valid_until: rfc3339(until),
        };
        // The credential is shown this once: no cache may keep it.
        Ok(Response::json(201, &body).no_store())
    }
}

#[cfg(test)]
mod tests {
    use super::validate_proxy_url;

    #[test]
    fn proxy_urls() {
        for ok in [
            "https://proxy.example",
            "https://proxy.example:8443/base",
            "https://10.0.0.1:443",
            "https://[2001:db8::1]:8443",
            "http://127.0.0.1:8443",
            "http://127.3.4.5",
            "http://localhost:8443",
            "http://[::1]:8443",
            "https://proxy.example:65535/caf%C3%A9",
            "https://proxy.example:1",
        ] {
            assert!(validate_proxy_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.evil.example",
            "http://proxy.example",
            "https://localhost:abc",
            "https://proxy.example:0",
            "https://proxy.example:70000",
            "https://",
            "https://user:pw@proxy.example",
            "https://[not-v6]:1",
            "https://[::1]evil",
            "https://[::1]evil.example:443",
            "http://[::1]x:8443",
            "https://[::1]:",
            "https://bad_host.example",
            "ftp://proxy.example",
            "proxy.example",
            "https://proxy.example/ x",
            "https://proxy.example:+443",
            "https://proxy.example:0443",
            "https://[::1]:+1",
            "http://[::1]:",
            "https://proxy.example/caf\u{e9}",
            "https://proxy.example/\u{a0}",
        ] {
            assert!(validate_proxy_url(bad).is_err(), "{bad}");
        }
    }
}
