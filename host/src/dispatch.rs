//! Handing one request to a component instance, the way Spin's HTTP trigger
//! does: route (a plain `404` when nothing matches; Spin's own
//! `/.well-known/spin/` paths answered by the host), give the request an
//! absolute URI and Spin's `spin-*` headers ([`crate::headers`]), wait for a
//! free slot, instantiate the component in a new `Store`, call its
//! `wasi:http/incoming-handler`, and stream its response.
//!
//! A trap, a guest that returns without setting a response, or one that runs
//! past the time limit gives a `500` with
//! `{"error":{"code":"internal","message":...}}`; the host keeps serving. One
//! structured log line per request records method, path (never the query),
//! component, status and duration; header values and bodies are never
//! logged.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::headers::add_spin_headers;
use crate::runtime::RequestState;
use crate::server::App;

/// The outcome of dispatching one request, for the log line.
struct Outcome {
    component: Option<String>,
    response: Response<HyperOutgoingBody>,
    error: Option<String>,
}

/// Answers one request and logs it.
pub(crate) async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    client_addr: SocketAddr,
) -> Response<HyperOutgoingBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let Outcome { component, response, error } = dispatch(&app, req, client_addr).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let component = component.as_deref().unwrap_or("-");
    match error {
        None => tracing::info!(%method, %path, component, status, duration_ms, "request"),
        Some(error) => {
            tracing::warn!(%method, %path, component, status, duration_ms, %error, "request failed")
        }
    }
    response
}

async fn dispatch(app: &Arc<App>, mut req: Request<Incoming>, client_addr: SocketAddr) -> Outcome {
    let path = req.uri().path().to_string();

    // Spin answers these itself; they never reach the app.
    if let Some(rest) = path.strip_prefix("/.well-known/spin/") {
        let response = match rest {
            "health" => plain(StatusCode::OK, "OK"),
            _ => plain(StatusCode::NOT_FOUND, ""),
        };
        return Outcome { component: None, response, error: None };
    }

    let Some(route) = app.router.route(&path) else {
        return Outcome { component: None, response: plain(StatusCode::NOT_FOUND, ""), error: None };
    };
    let component_id = route.component.clone();
    let fail = |message: String| Outcome {
        component: Some(component_id.clone()),
        response: internal_error(&message),
        error: Some(message),
    };
    let Some(component) = app.components.get(&route.component) else {
        return fail(format!("component {:?} is not loaded", route.component));
    };

    let full_url = match make_uri_absolute(&mut req) {
        Ok(full_url) => full_url,
        Err(e) => return fail(e),
    };
    add_spin_headers(req.headers_mut(), &route, &full_url, client_addr, app.client_spin_headers);

    // Wait for a free slot; held until the guest is done.
    let Ok(permit) = app.limiter.clone().acquire_owned().await else {
        return fail("the host is shutting down".to_string());
    };

    let mut store = Store::new(&app.engine, RequestState::new(component.context.clone(), app.kv.clone(), app.cas_mode));
    let time_limit = app.request_timeout;
    let deadline = Instant::now() + time_limit;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(TimedOut(time_limit)))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    // Read to its end even if the component stops early (see drain.rs).
    let req = req.map(crate::drain::Draining::new);
    let incoming = match store.data_mut().http().new_incoming_request(Scheme::Http, req) {
        Ok(incoming) => incoming,
        Err(e) => return fail(format!("cannot pass the request to the component: {e}")),
    };
    let (response_tx, response_rx) = oneshot::channel();
    let outparam = match store.data_mut().http().new_response_outparam(response_tx) {
        Ok(outparam) => outparam,
        Err(e) => return fail(format!("cannot create the response: {e}")),
    };

    let pre = component.pre.clone();
    let mut slot = GuestSlot { store, _permit: permit, _app: app.clone() };
    let guest = tokio::spawn(async move {
        let store = &mut slot.store;
        let run = async {
            let proxy = pre.instantiate_async(&mut *store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut *store, incoming, outparam).await
        };
        let result = match tokio::time::timeout(time_limit, run).await {
            Ok(result) => result,
            Err(_elapsed) => Err(wasmtime::Error::new(TimedOut(time_limit))),
        };
        drop(slot);
        result
    });
    let abort = guest.abort_handle();

    match response_rx.await {
        Ok(Ok(response)) => {
            // The guest may still be writing the body; report a later failure.
            let id = component_id.clone();
            tokio::spawn(async move {
                match guest.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(
                        component = %id,
                        error = %describe(&e),
                        "component failed after its response started"
                    ),
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => tracing::warn!(component = %id, error = %e, "component task failed"),
                }
            });
            // As Spin: when the client goes away (the body is dropped), stop the guest.
            let response = response.map(|body| AbortOnDrop { body, abort }.boxed_unsync());
            Outcome { component: Some(component_id), response, error: None }
        }
        Ok(Err(code)) => fail(format!("the component answered with an error: {code:?}")),
        Err(_) => {
            let reason = match guest.await {
                Ok(Ok(())) => "the component returned without setting a response".to_string(),
                Ok(Err(e)) => describe(&e),
                Err(e) => format!("the component task failed: {e}"),
            };
            fail(reason)
        }
    }
}

/// What a running guest holds. Fields drop in order: the store (freeing its
/// pooled instance) before the permit that lets the next request in, and the
/// app (whose epoch thread the guest needs) last.
struct GuestSlot {
    store: Store<RequestState>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _app: Arc<App>,
}

/// Gives the request the absolute URI `wasi:http` expects (from its `Host`
/// header) and returns it as the full URL.
fn make_uri_absolute(req: &mut Request<Incoming>) -> Result<String, String> {
    let host = match req.headers().get(HOST) {
        Some(value) => value.to_str().map_err(|_| "the Host header is not valid UTF-8".to_string())?.to_string(),
        None => match req.uri().authority() {
            Some(authority) => authority.to_string(),
            None => return Err("the request has no Host header".to_string()),
        },
    };
    let path_and_query =
        req.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| "/".to_string());
    let full_url = format!("http://{host}{path_and_query}");
    *req.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path_and_query.as_str())
        .build()
        .map_err(|e| format!("invalid request URI: {e}"))?;
    Ok(full_url)
}

/// The request ran past the time limit.
#[derive(Debug)]
struct TimedOut(Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request exceeded the time limit of {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// A one-line description of why a guest failed.
fn describe(error: &wasmtime::Error) -> String {
    if let Some(timeout) = error.downcast_ref::<TimedOut>() {
        return timeout.to_string();
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return format!("the component exited (status {}) without setting a response", exit.0);
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return format!("the component trapped: {trap}");
    }
    let text = error.to_string();
    text.lines().next().unwrap_or("unknown error").to_string()
}

fn plain(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// The host's own `500`, in the app's error format.
fn internal_error(message: &str) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "error": { "code": "internal", "message": message }
    });
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn full(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes).map_err(|never: std::convert::Infallible| match never {}).boxed_unsync()
}

/// A response body that aborts the guest's task when dropped.
struct AbortOnDrop {
    body: HyperOutgoingBody,
    abort: tokio::task::AbortHandle,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl http_body::Body for AbortOnDrop {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_error_body_is_the_error_contract() {
        let response = internal_error("boom");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers().get(http::header::CONTENT_TYPE).unwrap(), "application/json");
    }
}
