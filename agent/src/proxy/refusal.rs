//! The proxy's own answers, as the Kubernetes `Status` JSON kubectl prints
//! ([`lanyard_core::proxy::status`]), never cached: a refusal, or the
//! apiserver out of reach.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use lanyard_core::proxy::status::{Refusal, failure_body};

use super::body::{self, ProxyBody};

/// The response to a refused request, and its body's length.
pub fn response(refusal: &Refusal) -> (Response<ProxyBody>, u64) {
    status(StatusCode::from_u16(refusal.code()).unwrap_or(StatusCode::UNAUTHORIZED), refusal.body())
}

/// The answer when the kube-apiserver cannot be reached, and its body's length.
pub fn bad_gateway(message: &str) -> (Response<ProxyBody>, u64) {
    status(StatusCode::BAD_GATEWAY, failure_body(502, "ServiceUnavailable", message.to_owned()))
}

fn status(code: StatusCode, json: Vec<u8>) -> (Response<ProxyBody>, u64) {
    let len = json.len() as u64;
    let mut resp = Response::new(body::full(json));
    *resp.status_mut() = code;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    (resp, len)
}
