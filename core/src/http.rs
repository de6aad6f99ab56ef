//! The HTTP shape the core works on, independent of Spin: a buffered request
//! (with its body already cut at the endpoint's limit), a response, and the
//! one JSON body reader every endpoint uses.
//!
//! The host's routing arrives already read: the route that matched, its
//! parameters and the request's origin are fields of [`Request`], filled in
//! by the glue from Spin's `spin-*` headers. The core knows nothing of how
//! Spin spells them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
pub use crate::method::Method;

/// The largest request body a user-facing endpoint accepts. A grant is ~200
/// bytes; a cluster registration with a CA certificate ~2 KiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// The largest body of the agent API (a report on thousands of grants).
pub const MAX_AGENT_BODY_BYTES: usize = 1024 * 1024;

/// Whether `host` is a loopback host: `localhost`, `127.0.0.0/8` or `::1`
/// (with or without IPv6 brackets): the only hosts plain `http://` is ever
/// allowed to.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host of a URL's authority (`host`, `host:port`, `[v6]:port`).
pub fn authority_host(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
}

/// The request body as the shell read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The whole body, within the endpoint's limit.
    Complete(Vec<u8>),
    /// The body was longer than `limit`; the rest was not read.
    TooLarge {
        /// The endpoint's limit in bytes.
        limit: usize,
    },
}

/// How a request presents a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header.
    Absent,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    /// `Authorization: Bearer <token>`.
    Token(&'a str),
}

impl<'a> Bearer<'a> {
    /// How a request whose `Authorization` header is `authorization` presents
    /// a token (the one parser, for the API and for the access proxy).
    pub fn from_header(authorization: Option<&'a str>) -> Bearer<'a> {
        let Some(auth) = authorization else { return Bearer::Absent };
        match auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")).map(str::trim) {
            Some(token) if !token.is_empty() => Bearer::Token(token),
            _ => Bearer::Malformed,
        }
    }
}

/// A request as an endpoint sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    /// The query string, without the `?` (empty when there is none).
    pub query: String,
    /// The route template the host matched (`/api/v1/clusters/:cluster_id`), if any.
    pub route: Option<String>,
    /// The matched route's parameters (`cluster_id` → `c_…`): only those it declares.
    pub params: BTreeMap<String, String>,
    /// `scheme://authority` as the client addressed the host, if the host says.
    pub origin: Option<String>,
    /// Header names in lower case (the host's routing headers are not among them).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, as the host read it.
    pub body: Body,
}

impl Request {
    /// A request with no route, headers or body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            query: String::new(),
            route: None,
            params: BTreeMap::new(),
            origin: None,
            headers: Vec::new(),
            body: Body::Complete(Vec::new()),
        }
    }

    /// The same request as routed to `route` with these parameters.
    pub fn on_route(mut self, route: &str, params: &[(&str, &str)]) -> Self {
        self.route = Some(route.to_owned());
        self.params = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self
    }

    /// The same request with a header added.
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The same request with a body (cut at [`MAX_BODY_BYTES`], as a host would).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.body =
            if body.len() > MAX_BODY_BYTES { Body::TooLarge { limit: MAX_BODY_BYTES } } else { Body::Complete(body) };
        self
    }

    /// The first value of a header, if it is valid UTF-8.
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// All values of a header.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The same request with a query string (without the `?`).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// A query parameter's decoded value: the first, `None` when it is absent
    /// or its encoding is broken.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| crate::outbound::form_decode(k).as_deref() == Some(name))
            .and_then(|(_, v)| crate::outbound::form_decode(v))
    }

    /// A parameter of the matched route (`cluster_id` for `:cluster_id`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The request's bearer token, if it presents one.
    pub fn bearer(&self) -> Bearer<'_> {
        Bearer::from_header(self.header("authorization"))
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.header_all("cookie")
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    }

    /// Like [`Request::json`], but an empty body (with any content type or
    /// none) is `T::default()`: for endpoints whose body is optional.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        match &self.body {
            Body::Complete(b) if b.is_empty() => Ok(T::default()),
            _ => self.json(),
        }
    }

    /// The body parsed as JSON of type `T`: the content type must be JSON, the
    /// body within the limit and of the right shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bytes = match &self.body {
            Body::TooLarge { limit } => return Err(ApiError::PayloadTooLarge { limit: *limit }),
            Body::Complete(b) => b,
        };
        let content_type = self.header("content-type").unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        // Every request body is a JSON object; serde's derive would also read a
        // struct from an array of its fields in order (`["a@x.io", "view", "cluster"]`).
        if bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) != Some(&b'{') {
            return Err(ApiError::malformed("request body must be a JSON object"));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            // serde's message names the offending field or position, never a value we hold.
            ApiError::malformed(format!("request body is not valid JSON for this endpoint: {e}"))
        })
    }
}

/// An endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// A line for the component's log (stderr), e.g. the detail of a store
    /// failure that the client only sees as `unavailable`. Never a secret.
    pub log: Option<String>,
}

impl Response {
    /// A JSON body.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => {
                Response { status, headers: vec![("content-type".into(), "application/json".into())], body, log: None }
            }
            Err(e) => Response::error(&ApiError::unavailable(format!("serialising a response: {e}"))),
        }
    }

    /// A non-JSON body with its content type.
    pub fn text(status: u16, content_type: &str, body: String) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into_bytes(),
            log: None,
        }
    }

    /// Mark a response that carries a secret (a token, a credential, a CSRF
    /// value) as not to be stored by any cache, shared or private.
    pub fn no_store(mut self) -> Response {
        self.headers.push(("cache-control".into(), "no-store".into()));
        self.headers.push(("pragma".into(), "no-cache".into()));
        self
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// `303 See Other` to `location`, no body.
    pub fn redirect(location: &str) -> Response {
        Response { status: 303, headers: vec![("location".into(), location.into())], body: Vec::new(), log: None }
    }

    /// `204`, no body.
    pub fn no_content() -> Response {
        Response { status: 204, headers: Vec::new(), body: Vec::new(), log: None }
    }

    /// The error's status and JSON body (`Allow` on a 405, `Retry-After` on a 429).
    pub fn error(err: &ApiError) -> Response {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let ApiError::MethodNotAllowed(allowed) = err {
            headers.push(("allow".into(), allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")));
        }
        if let ApiError::RateLimited { retry_after } = err {
            headers.push(("retry-after".into(), retry_after.to_string()));
        }
        let log = match err {
            ApiError::Unavailable { detail } => Some(format!("unavailable: {detail}")),
            _ => None,
        };
        Response { status: err.status(), headers, body: err.body(), log }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Thing {
        #[allow(dead_code)]
        a: u32,
    }

    fn post(ct: &str, body: &str) -> Request {
        Request::new(Method::Post, "/").with_header("Content-Type", ct).with_body(body)
    }

    #[test]
    fn json_body_rules() {
        assert!(post("application/json", r#"{"a":1}"#).json::<Thing>().is_ok());
        assert!(post("application/json; charset=utf-8", r#"{"a":1}"#).json::<Thing>().is_ok());
        assert_eq!(post("text/plain", r#"{"a":1}"#).json::<Thing>().unwrap_err().status(), 415);
        assert_eq!(post("application/json", "{").json::<Thing>().unwrap_err().code().as_str(), "malformed_request");
        assert_eq!(post("application/json", r#"{"a":"x"}"#).json::<Thing>().unwrap_err().status(), 400);
        assert_eq!(post("application/json", r#"{"a":1,"b":2}"#).json::<Thing>().unwrap_err().status(), 400);
        let big = format!(r#"{{"a":1,"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        assert_eq!(post("application/json", &big).json::<Thing>().unwrap_err().status(), 413);
        assert!(post("application/json", " \r\n\t{\"a\":1}").json::<Thing>().is_ok(), "JSON whitespace first");
    }

    #[test]
    fn a_json_body_is_an_object_never_an_array_of_the_fields() {
        // serde's derive reads a struct from an array too: `[1]` was a Thing.
        for body in ["[1]", " [1]", "1", "\"a\"", "null", "", "\u{feff}{\"a\":1}"] {
            let e = post("application/json", body).json::<Thing>().unwrap_err();
            assert_eq!(e.code().as_str(), "malformed_request", "{body:?}");
        }
    }

    #[test]
    fn cookies_bearers_and_params() {
        let r = Request::new(Method::Get, "/")
            .with_header("cookie", "a=1; lanyard_session=tok.en.x; b=2")
            .on_route("/api/v1/clusters/:cluster_id", &[("cluster_id", "c_1")]);
        assert_eq!(r.cookie("lanyard_session"), Some("tok.en.x"));
        assert_eq!(r.cookie("missing"), None);
        assert_eq!(r.param("cluster_id"), Some("c_1"));
        assert_eq!(r.param("grant_id"), None);
        assert_eq!(r.bearer(), Bearer::Absent);
        let with = |v: &str| Request::new(Method::Get, "/").with_header("authorization", v);
        assert_eq!(with("Bearer abc").bearer(), Bearer::Token("abc"));
        assert_eq!(with("bearer  abc ").bearer(), Bearer::Token("abc"));
        for bad in ["Bearer ", "Bearer    ", "Basic abc", "abc", ""] {
            assert_eq!(with(bad).bearer(), Bearer::Malformed, "{bad:?}");
        }
    }
}
