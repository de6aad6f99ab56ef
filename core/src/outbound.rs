//! Outbound HTTP, as the host allows it.
//!
//! The core builds requests and reads responses; it sends nothing itself. A
//! component's host sends them (Spin's `wasi:http/outgoing-handler`, limited
//! to the component's `allowed_outbound_hosts`); tests give a recording
//! implementation. Only the identity provider is ever called: its discovery
//! document, its keys and its token endpoint ([`crate::oidc`]).
//!
//! Bodies are capped at [`MAX_RESPONSE_BYTES`]: a provider answering more is
//! an error, not a larger allocation.

/// The largest response body read from a provider.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// An outbound request: `GET`, or `POST` with a form body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// The absolute URL (`https://`, or `http://` to a loopback provider).
    pub url: String,
    /// The form body of a `POST`; `None` for a `GET`.
    pub form: Option<String>,
    /// Extra headers (an `Authorization` for a confidential client).
    pub headers: Vec<(String, String)>,
}

impl OutboundRequest {
    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        OutboundRequest { url: url.into(), form: None, headers: Vec::new() }
    }

    /// A `POST` of an `application/x-www-form-urlencoded` body to `url`.
    pub fn post_form(url: impl Into<String>, form: String) -> Self {
        OutboundRequest { url: url.into(), form: Some(form), headers: Vec::new() }
    }

    /// The same request with one more header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most [`MAX_RESPONSE_BYTES`].
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The host refused it: the URL is not in `allowed_outbound_hosts`.
    #[error("outbound HTTP to {0} is not allowed for this component (allowed_outbound_hosts)")]
    NotAllowed(String),
    /// Connecting, TLS, a timeout, or a broken response.
    #[error("the request to {url} failed: {reason}")]
    Failed {
        /// Where.
        url: String,
        /// What the host said.
        reason: String,
    },
    /// The body was larger than [`MAX_RESPONSE_BYTES`].
    #[error("the response from {0} is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge(String),
}

/// Sends outbound requests.
pub trait Outbound {
    /// Send `request` and read the whole response.
    fn send(&self, request: &OutboundRequest) -> Result<OutboundResponse, OutboundError>;
}

/// No outbound HTTP at all (a component whose `allowed_outbound_hosts` is empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOutbound;

impl Outbound for NoOutbound {
    fn send(&self, request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        Err(OutboundError::NotAllowed(request.url.clone()))
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A form or query string from pairs, each value encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&")
}

/// Decode one `application/x-www-form-urlencoded` value (`+` is a space); `None`
/// when a `%` escape is broken or the result is not UTF-8.
pub fn form_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_round_trip() {
        for value in ["plain", "a b&c=d/é", "%zz-not-escaped-after-encoding", ""] {
            assert_eq!(form_decode(&form_encode(value)).as_deref(), Some(value));
        }
        assert_eq!(form(&[("a", "1 2"), ("b", "x&y")]), "a=1%202&b=x%26y");
        assert_eq!(form_decode("a+b%21").as_deref(), Some("a b!"));
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%ff"), None, "not UTF-8");
    }
}
