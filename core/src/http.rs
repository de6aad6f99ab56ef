//! The HTTP shape the core works on, independent of Spin: a buffered request
//! (with its body already cut at [`MAX_BODY_BYTES`]), a response, and the one
//! JSON body reader every endpoint uses.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body a user-facing endpoint accepts. A grant is ~200
/// bytes; a cluster registration with a CA certificate ~2 KiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// The largest body of the agent API (a report on thousands of grants).
pub const MAX_AGENT_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// Whether the method changes state (and so needs CSRF under a cookie).
    pub fn is_write(self) -> bool {
        !matches!(self, Method::Get | Method::Head | Method::Options)
    }
}

/// The request body as the shell read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The whole body, within the endpoint's limit.
    Complete(Vec<u8>),
    /// The body was longer than `limit`; the rest was not read.
    TooLarge { limit: usize },
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Body,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request { method, path: path.into(), headers: Vec::new(), body: Body::Complete(Vec::new()) }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.body =
            if body.len() > MAX_BODY_BYTES { Body::TooLarge { limit: MAX_BODY_BYTES } } else { Body::Complete(body) };
        self
    }

    /// The first value of a header, if it is valid UTF-8.
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

    /// A header Spin's router sets (`spin-*`). Spin adds its own value after
    /// any the client sent, so the last value is the router's.
    pub fn router_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// A route parameter, as Spin passes it: `:cluster_id` arrives in the
    /// `spin-path-match-cluster-id` header. Only a parameter that the matched
    /// route (`spin-matched-route`) declares is read: Spin adds
    /// `spin-path-match-*` headers only for the route's own parameters, so on
    /// any other route such a header can only have come from the client.
    pub fn param(&self, name: &str) -> Option<&str> {
        let route = self.router_header("spin-matched-route")?;
        if !route.split('/').any(|segment| segment.strip_prefix(':') == Some(name)) {
            return None;
        }
        self.router_header(&format!("spin-path-match-{}", name.replace('_', "-")))
    }

    /// The token of an `Authorization: Bearer <token>` header: `None` without
    /// the header, `Some(None)` when it is not a non-empty bearer token.
    pub fn bearer_token(&self) -> Option<Option<&str>> {
        let auth = self.header("authorization")?;
        Some(
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty()),
        )
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
        serde_json::from_slice(bytes).map_err(|e| {
            // serde's message names the offending field or position, never a value we hold.
            ApiError::malformed(format!("request body is not valid JSON for this endpoint: {e}"))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A line for the component's log (stderr), e.g. the detail of a store
    /// failure that the client only sees as `unavailable`. Never a secret.
    pub log: Option<String>,
}

impl Response {
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

    pub fn no_content() -> Response {
        Response { status: 204, headers: Vec::new(), body: Vec::new(), log: None }
    }

    pub fn error(err: &ApiError) -> Response {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let ApiError::MethodNotAllowed(allowed) = err {
            headers.push(("allow".into(), allowed.join(", ")));
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
        assert_eq!(post("application/json", "{").json::<Thing>().unwrap_err().code(), "malformed_request");
        assert_eq!(post("application/json", r#"{"a":"x"}"#).json::<Thing>().unwrap_err().status(), 400);
        assert_eq!(post("application/json", r#"{"a":1,"b":2}"#).json::<Thing>().unwrap_err().status(), 400);
        let big = format!(r#"{{"a":1,"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        assert_eq!(post("application/json", &big).json::<Thing>().unwrap_err().status(), 413);
    }

    #[test]
    fn cookies_and_params() {
        let r = Request::new(Method::Get, "/")
            .with_header("cookie", "a=1; lanyard_session=tok.en.x; b=2")
            .with_header("spin-path-match-cluster-id", "c_forged")
            .with_header("spin-matched-route", "/x/:cluster_id/:forged")
            .with_header("spin-path-match-member-id", "m_forged")
            .with_header("spin-matched-route", "/api/v1/clusters/:cluster_id/access/grants/:grant_id")
            .with_header("spin-path-match-cluster-id", "c_1")
            .with_header("spin-path-match-grant-id", "g_1");
        assert_eq!(r.cookie("lanyard_session"), Some("tok.en.x"));
        assert_eq!(r.cookie("missing"), None);
        assert_eq!(r.param("cluster_id"), Some("c_1"), "the router's value, not the client's");
        assert_eq!(r.param("grant_id"), Some("g_1"));
        assert_eq!(r.param("member_id"), None, "the route declares no member_id: the header is the client's");
        assert_eq!(r.param("forged"), None, "only the router's (last) matched route counts");
        let no_route = Request::new(Method::Get, "/").with_header("spin-path-match-cluster-id", "c_1");
        assert_eq!(no_route.param("cluster_id"), None, "without a matched route there are no parameters");
    }
}
