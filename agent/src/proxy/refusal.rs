//! A refusal as the response kubectl gets: the Kubernetes `Status` JSON of
//! [`lanyard_core::proxy::status::Refusal`], never cached.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use lanyard_core::proxy::status::Refusal;

use super::body::{self, ProxyBody};

/// The response to a refused request.
pub fn response(refusal: &Refusal) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(refusal.body()));
    *resp.status_mut() = StatusCode::from_u16(refusal.code()).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    resp
}
