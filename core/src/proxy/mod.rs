//! The access proxy's decisions, as pure functions: what the agent's proxy
//! (`agent/src/proxy/`) runs for every kubectl request before it forwards it.
//!
//! # The security boundary (design memo)
//!
//! kubectl talks to the proxy with a Lanyard cluster token; the proxy talks
//! to the kube-apiserver with its own ServiceAccount credential, whose only
//! right is `impersonate` on users. Everything the apiserver then decides,
//! it decides for the user the proxy names in `Impersonate-User`. So the
//! proxy's one job is to name the right user, or refuse:
//!
//! * **The identity comes only from a verified token** ([`access`]): signed
//!   by a key the control plane publishes (EdDSA only), for this cluster,
//!   unexpired, minted at or after the cluster's revocation epoch, for a
//!   user who still holds a live grant in the access state the agent last
//!   synced. Anything else is `401`. A token's signature is checked once
//!   per JWKS ([`verified`]); everything that can change is checked on
//!   every request. An access state older than the
//!   staleness limit refuses everything: the proxy fails closed when it can
//!   no longer know about revocations.
//! * **Nothing the client sends can speak for someone else** ([`headers`]):
//!   a request that carries any `Impersonate-*` header is refused with `403`
//!   (never silently dropped: `kubectl --as` must fail loudly, never widen
//!   or narrow access by surprise); the client's `Authorization`, hop-by-hop
//!   headers and `X-Forwarded-*` are removed; the proxy adds exactly one
//!   `Impersonate-User` and no group, so no bug can reach `system:masters`.
//! * **Refusals are Kubernetes `Status` objects** ([`status`]), which
//!   kubectl prints as they are; they never echo the token.
//! * **Every request is audited** ([`audit`], from [`request_info`]): who,
//!   which verb on which resource, the answer, bytes and time; never the
//!   token, never the query string (which can carry one).

pub mod access;
pub mod audit;
pub mod headers;
pub mod request_info;
pub mod status;
pub mod verified;
