//! The Spin side of every Lanyard component, so that a component is one line
//! (every `functions/<name>/src/lib.rs` is this, and is compiled):
//!
//! ```text
//! #[spin_sdk::http_component]
//! async fn handle(req: IncomingRequest, out: ResponseOutparam) {
//!     lanyard_glue::serve(const { handler(Endpoint::Grants) }, req, out).await
//! }
//! ```
//!
//! It turns Spin's request into the core's (its routing headers read by
//! [`spin_headers`], the body read only once the head is admitted and at most
//! the endpoint's limit), gives the core Spin's key-value store, variables,
//! clock and randomness, and writes the core's response back. All logic is
//! in `lanyard-core`.

use std::collections::HashMap;

use futures::StreamExt;
use lanyard_core::clock::SystemClock;
use lanyard_core::config::Variables;
use lanyard_core::http::{Body, Method, Request, Response};
use lanyard_core::kv::{KeyValue, KvError};
use lanyard_core::random::SystemRandom;
use lanyard_core::{ApiError, Env};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

pub use lanyard_core::{Endpoint, Handler, handler};

pub mod outbound;
pub mod spin_headers;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/keyvalue",
        world: "wasi:keyvalue/imports@0.2.0-draft2",
        generate_all,
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store as wasi_store};

/// The key-value store every component uses (`key_value_stores = ["default"]`).
pub const STORE_LABEL: &str = "default";

/// Serve one request with `handler`: a constant in the component, so that
/// the component links only its own endpoint ([`Handler`]).
pub async fn serve(handler: Handler, req: IncomingRequest, out: ResponseOutparam) {
    let endpoint = handler.endpoint();
    let response = match SpinKv::open() {
        Ok(kv) => {
            let env = Env {
                kv: &kv,
                vars: &SpinVariables,
                now: unix_now(),
                clock: &SystemClock,
                random: &SystemRandom,
                outbound: &outbound::SpinOutbound,
            };
            let head = read_head(&req);
            // What the head decides (an agent's credential) is decided before any body is read.
            match lanyard_core::admit(handler, &head, &env) {
                Err(refusal) => refusal,
                Ok(admission) => match read_body(req, &head, endpoint.body_limit()).await {
                    Ok(body) => lanyard_core::handle(admission, &Request { body, ..head }, &env),
                    Err(e) => Response::error(&e),
                },
            }
        }
        Err(e) => Response::error(&ApiError::unavailable(e)),
    };
    if let Some(line) = &response.log {
        eprintln!("lanyard {endpoint:?}: {line}");
    }
    write_response(response, out).await;
}

/// Serve the Access view's pages and assets (the portal component): no
/// store, no variables, only the request.
pub async fn serve_portal(assets: &lanyard_core::portal::Assets, req: IncomingRequest, out: ResponseOutparam) {
    let head = read_head(&req);
    write_response(lanyard_core::portal::serve(&head, assets), out).await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The request without its body (which is still unread).
fn read_head(req: &IncomingRequest) -> Request {
    let method = Method::parse(&req.method().to_string());
    let path_and_query = req.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = path_and_query.split_once('?').unwrap_or((&path_and_query, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let mut headers: Vec<(String, Vec<u8>)> =
        req.headers().entries().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let routing = spin_headers::take_routing(&mut headers);
    Request {
        method,
        path,
        query,
        route: routing.route,
        params: routing.params,
        origin: routing.origin,
        headers,
        body: Body::Complete(Vec::new()),
    }
}

/// The body, within `limit` (a declared length over it is not read at all).
async fn read_body(req: IncomingRequest, head: &Request, limit: usize) -> Result<Body, ApiError> {
    let declared_too_large =
        head.header("content-length").and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > limit as u64);
    if declared_too_large { Ok(Body::TooLarge { limit }) } else { read_body_capped(req, limit).await }
}

/// Read the body, stopping as soon as it exceeds the limit.
async fn read_body_capped(req: IncomingRequest, limit: usize) -> Result<Body, ApiError> {
    let mut stream = std::pin::pin!(req.into_body_stream());
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::malformed("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Ok(Body::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Body::Complete(body))
}

async fn write_response(response: Response, out: ResponseOutparam) {
    let headers: Vec<(String, Vec<u8>)> = response.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(response.status);
    if let Err(e) = out.set_with_body(outgoing, response.body).await {
        eprintln!("lanyard: writing the response body failed: {e:?}");
    }
}

/// Spin's variables.
struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        match spin_sdk::variables::get(name) {
            Ok(v) => Ok(Some(v)),
            Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

/// Spin's key-value store: single-key operations through Spin's own
/// interface, `increment` and batches through `wasi:keyvalue`.
struct SpinKv {
    spin: spin_sdk::key_value::Store,
    bucket: wasi_store::Bucket,
}

fn store_err(e: impl std::fmt::Debug) -> KvError {
    KvError(format!("{e:?}"))
}

impl SpinKv {
    fn open() -> Result<SpinKv, KvError> {
        Ok(SpinKv {
            spin: spin_sdk::key_value::Store::open(STORE_LABEL).map_err(store_err)?,
            bucket: wasi_store::open(STORE_LABEL).map_err(store_err)?,
        })
    }
}

impl KeyValue for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.spin.get(key).map_err(store_err)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.spin.set(key, value).map_err(store_err)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.spin.delete(key).map_err(store_err)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        atomics::increment(&self.bucket, key, delta).map_err(store_err)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Backends differ in what they return (Spin's SQLite returns only the
        // keys it found, in any order): match results by key.
        let mut found: HashMap<String, Vec<u8>> = batch::get_many(&self.bucket, keys)
            .map_err(store_err)?
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        batch::delete_many(&self.bucket, keys).map_err(store_err)
    }
}
