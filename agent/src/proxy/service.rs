//! One request through the proxy: admit it (a verified token of a member
//! with a live grant, against a fresh enough access view), rebuild its
//! headers (no client credential, no impersonation of its own, exactly one
//! `Impersonate-User`), forward it, and pass the answer back, audited. The
//! identity comes only from the verified token: nothing the client sends
//! names the user.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use lanyard_core::http::{Bearer, Method};
use lanyard_core::ids::ClusterId;
use lanyard_core::proxy::access::Admitted;
use lanyard_core::proxy::audit::{AUDIT_SCHEMA, AuditRecord, SessionEvent};
use lanyard_core::proxy::headers::{Header, is_hop_by_hop, is_upgrade, upstream_headers};
use lanyard_core::proxy::request_info::{RequestInfo, request_info};
use lanyard_core::proxy::status::Refusal;
use lanyard_core::proxy::verified::VerifiedTokens;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::audit::Audit;
use super::body::{self, OnEnd, ProxyBody};
use super::sync::View;
use super::upstream::Upstream;
use super::{refusal, upgrade};
use crate::clock::WallClock;
use crate::metrics::Metrics;

/// The proxy's per-request service.
pub struct Proxy {
    /// The cluster it guards.
    pub cluster_id: ClusterId,
    /// The access view the sync loop keeps.
    pub view: View,
    /// After how long without a sync everything is refused.
    pub max_staleness: Duration,
    /// The kube-apiserver.
    pub upstream: Upstream,
    /// The audit sink.
    pub audit: Audit,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Wall-clock time, for token expiry and the view's age.
    pub clock: Arc<dyn WallClock>,
    /// Tokens whose signature was already checked.
    pub tokens: VerifiedTokens,
}

/// What the audit record of a request needs to know, from its start.
pub struct Ticket {
    proxy: Arc<Proxy>,
    started: Instant,
    who: Option<Admitted>,
    info: RequestInfo,
}

impl Ticket {
    /// The record of this request, answered `status` with `bytes`.
    pub fn record(&self, status: u16, bytes: u64, session: Option<SessionEvent>) -> AuditRecord {
        AuditRecord {
            audit: AUDIT_SCHEMA,
            cluster_id: self.proxy.cluster_id.clone(),
            member_id: self.who.as_ref().map(|a| a.member_id.clone()),
            user: self.who.as_ref().map(|a| a.user.clone()),
            request: self.info.clone(),
            status,
            bytes,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            session,
        }
    }

    /// Write the record of this request.
    pub fn audit(&self, status: u16, bytes: u64, session: Option<SessionEvent>) {
        self.proxy.audit.record(&self.record(status, bytes, session));
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.proxy.metrics
    }
}

/// The audit record of a streamed response, written when its body ends.
struct AuditAtEnd {
    ticket: Ticket,
    status: u16,
}

impl OnEnd for AuditAtEnd {
    fn done(self: Box<Self>, bytes: u64) {
        self.ticket.audit(self.status, bytes, None);
    }
}

impl Proxy {
    /// Answer one request (never an error: a failure is a response).
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let method = Method::parse(req.method().as_str());
        let watch = req.uri().query().is_some_and(asks_to_watch);
        let info = request_info(method, req.uri().path(), watch);
        let mut ticket = Ticket { proxy: self.clone(), started, who: None, info };
        let resp = match self.admit(&req, method) {
            Ok(admitted) => {
                ticket.who = Some(admitted);
                self.forward(req, ticket).await
            }
            Err(refused) => refuse(&ticket, &refused),
        };
        self.metrics.request(resp.status().as_u16(), started.elapsed());
        Ok(resp)
    }

    fn admit(&self, req: &Request<Incoming>, method: Method) -> Result<Admitted, Refusal> {
        let view = self.view.borrow().clone().ok_or(Refusal::NotSynced)?;
        let mut authorizations = req.headers().get_all(AUTHORIZATION).iter();
        let bearer = match (authorizations.next(), authorizations.next()) {
            (None, _) => Bearer::Absent,
            (Some(value), None) => Bearer::from_header(value.to_str().ok()),
            // Two credentials: which one would the apiserver have believed?
            (Some(_), Some(_)) => Bearer::Malformed,
        };
        let admitted = view.admit(bearer, self.clock.unix_now(), self.max_staleness.as_secs(), &self.tokens)?;
        if method == Method::Other {
            return Err(Refusal::Method);
        }
        Ok(admitted)
    }

    async fn forward(&self, mut req: Request<Incoming>, ticket: Ticket) -> Response<ProxyBody> {
        let user = ticket.who.as_ref().map(|a| a.user.clone()).unwrap_or_default();
        let client_upgrade = (req.version() == Version::HTTP_11).then(|| hyper::upgrade::on(&mut req));
        let (parts, incoming) = req.into_parts();
        let pairs: Vec<Header<'_>> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        let headers = match upstream_headers(&pairs, &user) {
            Ok(headers) => headers,
            Err(refused) => {
                warn!(refusal = %refused, "refused a request that carries impersonation headers");
                return refuse(&ticket, &refused);
            }
        };
        let client_upgrade = client_upgrade.filter(|_| is_upgrade(&pairs));
        let uri = match self.upstream.uri(parts.uri.path_and_query()) {
            Ok(uri) => uri,
            Err(e) => return bad_gateway(&ticket, &format!("{e:#}")),
        };
        let mut out = Request::new(incoming);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.version_mut() = Version::HTTP_11;
        let out_headers = out.headers_mut();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
                out_headers.append(name, value);
            }
        }
        if let Some(auth) = self.upstream.authorization() {
            out_headers.insert(AUTHORIZATION, auth);
        }
        let mut resp = match self.upstream.send(out).await {
            Ok(resp) => resp,
            Err(e) => {
                debug!(error = %e, "the kube-apiserver did not answer");
                return bad_gateway(&ticket, "the access proxy cannot reach the Kubernetes API server");
            }
        };
        let status = resp.status();
        if status == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let (head, _) = resp.into_parts();
            let mut out = Response::from_parts(head, body::empty());
            keep_upgrade_headers(out.headers_mut());
            ticket.audit(101, 0, Some(SessionEvent::Start));
            tokio::spawn(upgrade::splice(client_upgrade, upstream_upgrade, ticket));
            return out;
        }
        let (mut head, incoming) = resp.into_parts();
        strip_hop_by_hop(&mut head.headers);
        let on_end = Box::new(AuditAtEnd { ticket, status: status.as_u16() });
        Response::from_parts(head, body::metered(incoming, on_end))
    }
}

/// The answer to a refused request, audited.
fn refuse(ticket: &Ticket, refused: &Refusal) -> Response<ProxyBody> {
    audited(ticket, refusal::response(refused))
}

/// The answer when the kube-apiserver cannot be reached, audited.
fn bad_gateway(ticket: &Ticket, message: &str) -> Response<ProxyBody> {
    audited(ticket, refusal::bad_gateway(message))
}

fn audited(ticket: &Ticket, (resp, bytes): (Response<ProxyBody>, u64)) -> Response<ProxyBody> {
    ticket.audit(resp.status().as_u16(), bytes, None);
    resp
}

/// Whether a query string asks to watch (`watch=true` or `watch=1`).
fn asks_to_watch(query: &str) -> bool {
    query.split('&').any(|pair| matches!(pair, "watch=true" | "watch=1" | "watch=True"))
}

/// A response's hop-by-hop headers, and those its `Connection` names, go.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name.as_str()) || named.iter().any(|n| n == name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// A `101` keeps `Connection: Upgrade` and its `Upgrade`; the rest of the hop-by-hop headers go.
fn keep_upgrade_headers(headers: &mut http::HeaderMap) {
    let upgrade = headers.get(http::header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    if let Some(upgrade) = upgrade {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(http::header::UPGRADE, upgrade);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_is_read_from_the_query() {
        assert!(asks_to_watch("watch=true&resourceVersion=5"));
        assert!(asks_to_watch("labelSelector=a&watch=1"));
        assert!(!asks_to_watch("watch=false"));
        assert!(!asks_to_watch("nowatch=true"));
    }

    #[test]
    fn response_hop_by_hop_headers_go_and_an_upgrade_keeps_its_own() {
        let mut h = http::HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["content-type"]);
        h.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
        keep_upgrade_headers(&mut h);
        assert_eq!(h.get("connection").unwrap(), "Upgrade");
        assert_eq!(h.get("upgrade").unwrap(), "SPDY/3.1");
        assert!(h.get("x-hop").is_none());
    }
}
