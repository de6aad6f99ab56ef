//! Outbound HTTP for the core ([`lanyard_core::outbound`]) over Spin's
//! `wasi:http/outgoing-handler`: the host decides what is allowed (the
//! component's `allowed_outbound_hosts`), this only sends and reads, with
//! timeouts and the core's body cap.
//!
//! The core is synchronous, so each request blocks on its pollables; a
//! component serves one request, so there is nothing else to run meanwhile.

use lanyard_core::outbound::{MAX_RESPONSE_BYTES, Outbound, OutboundError, OutboundRequest, OutboundResponse};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};

/// How long connecting, the first byte and each later byte may take.
const CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;
const BYTE_TIMEOUT_NS: u64 = 10_000_000_000;

/// Spin's outbound HTTP.
pub struct SpinOutbound;

impl Outbound for SpinOutbound {
    fn send(&self, request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let failed = |reason: String| OutboundError::Failed { url: request.url.clone(), reason };
        let (scheme, authority, path) = split_url(&request.url).ok_or_else(|| failed("not an absolute URL".into()))?;
        let mut headers: Vec<(String, Vec<u8>)> = vec![("accept".into(), b"application/json".to_vec())];
        if request.form.is_some() {
            headers.push(("content-type".into(), b"application/x-www-form-urlencoded".to_vec()));
        }
        headers.extend(request.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())));
        let fields = Fields::from_list(&headers).map_err(|e| failed(format!("bad header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = if request.form.is_some() { Method::Post } else { Method::Get };
        let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
        let set = outgoing.set_method(&method).is_ok()
            && outgoing.set_scheme(Some(&scheme)).is_ok()
            && outgoing.set_authority(Some(authority)).is_ok()
            && outgoing.set_path_with_query(Some(path)).is_ok();
        if !set {
            return Err(failed("the URL was refused by the host".into()));
        }
        let body = outgoing.body().map_err(|()| failed("no request body".into()))?;
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS));
        let _ = options.set_first_byte_timeout(Some(BYTE_TIMEOUT_NS));
        let _ = options.set_between_bytes_timeout(Some(BYTE_TIMEOUT_NS));
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| refusal(request, e))?;
        if let Some(form) = &request.form {
            let stream = body.write().map_err(|()| failed("no request body stream".into()))?;
            for chunk in form.as_bytes().chunks(4096) {
                stream.blocking_write_and_flush(chunk).map_err(|e| failed(format!("writing the body: {e:?}")))?;
            }
            drop(stream);
        }
        OutgoingBody::finish(body, None).map_err(|e| failed(format!("{e:?}")))?;
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Err(refusal(request, e)),
            Some(Err(())) | None => return Err(failed("no response".into())),
        };
        let status = response.status();
        let incoming = response.consume().map_err(|()| failed("no response body".into()))?;
        let stream = incoming.stream().map_err(|()| failed("no response body stream".into()))?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(OutboundError::TooLarge(request.url.clone()));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Err(wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(failed(format!("reading the body: {e:?}"))),
            }
        }
        Ok(OutboundResponse { status, body: bytes })
    }
}

fn refusal(request: &OutboundRequest, e: ErrorCode) -> OutboundError {
    match e {
        ErrorCode::HttpRequestDenied => OutboundError::NotAllowed(request.url.clone()),
        other => OutboundError::Failed { url: request.url.clone(), reason: format!("{other:?}") },
    }
}

/// `scheme`, `authority` and `path?query` of an absolute URL.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = if path.is_empty() { "/" } else { path };
    (matches!(scheme, "http" | "https") && !authority.is_empty()).then_some((scheme, authority, path))
}
