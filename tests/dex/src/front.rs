//! The counting reverse proxy in front of Dex. It is bound before Dex starts,
//! so the issuer URL (which Dex must be configured with, and which the
//! control plane under test is pointed at) is known first; every client
//! reaches Dex through it, and it counts their requests by path, so a test can
//! prove, say, that a flood of bad tokens made the control plane fetch the
//! JWKS at most once.
//!
//! It is plain HTTP/1.1 with keep-alive on both sides: each connection from a
//! client gets its own connection to Dex, opened on its first request and
//! opened again if Dex closed it (as a restart does). While Dex is not
//! listening, the proxy answers `502 Bad Gateway`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// The path under which Dex serves, on the front's origin.
pub const ISSUER_PATH: &str = "/dex";

/// The proxy's answer: Dex's, streamed, or one the proxy wrote itself.
type Body = Either<Incoming, Full<Bytes>>;

/// State the proxy's connections share with the [`Front`].
#[derive(Default)]
struct Shared {
    /// Where Dex listens, once it is configured.
    upstream: Mutex<Option<SocketAddr>>,
    /// Requests received, by path (no query).
    counts: Mutex<HashMap<String, usize>>,
}

impl Shared {
    fn upstream(&self) -> Option<SocketAddr> {
        *self.upstream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, path: &str) {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner).entry(path.to_owned()).or_default() += 1;
    }
}

/// A loopback listener, and the proxy serving it, that forwards to Dex.
pub struct Front {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Front").field("address", &self.address).finish_non_exhaustive()
    }
}

impl Front {
    /// Binds a free loopback port and starts proxying (to nothing until Dex
    /// starts: `502` until then).
    pub fn bind() -> Result<Front> {
        Front::bind_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// Like [`Front::bind`], on a given address (the local run's fixed port).
    pub fn bind_at(address: SocketAddr) -> Result<Front> {
        let listener =
            TcpListener::bind(address).with_context(|| format!("could not bind the Dex front's port {address}"))?;
        let address = listener.local_addr().context("could not read the Dex front's address")?;
        listener.set_nonblocking(true).context("could not make the Dex front's listener non-blocking")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("could not start the Dex front's runtime")?;
        let shared = Arc::new(Shared::default());
        let (shutdown, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("dex-front".to_owned())
            .spawn(move || runtime.block_on(serve(listener, serving, stopped)))
            .context("could not start the Dex front's thread")?;
        Ok(Front { address, shared, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// The issuer URL: `http://127.0.0.1:<port>/dex`.
    pub fn issuer(&self) -> String {
        format!("http://{}{ISSUER_PATH}", self.address)
    }

    /// The address the front listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many requests for `path` (e.g. `/dex/keys`; the query is not part
    /// of it) the front has received.
    pub fn requests_to(&self, path: &str) -> usize {
        self.shared.counts.lock().unwrap_or_else(PoisonError::into_inner).get(path).copied().unwrap_or(0)
    }

    /// How many requests the front has received, for any path (including
    /// the probes that waited for Dex to start).
    pub fn total_requests(&self) -> usize {
        self.shared.counts.lock().unwrap_or_else(PoisonError::into_inner).values().sum()
    }

    /// Forgets every count, so that a test counts from here.
    pub fn reset_counts(&self) {
        self.shared.counts.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Forwards to `upstream` from now on.
    pub(crate) fn forward_to(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap_or_else(PoisonError::into_inner) = Some(upstream);
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The serving loop may have ended already; nothing to tell then.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the proxy thread has been reported on stderr already.
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stopped` fires; dropping the runtime then ends
/// every connection.
async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("dex front: could not register the listener: {error}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => eprintln!("dex front: accept failed: {error}"),
            },
        }
    }
}

/// Serves one client connection, forwarding over one Dex connection at a time.
async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let upstream: Arc<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>> = Arc::default();
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        let upstream = Arc::clone(&upstream);
        async move { Ok::<_, std::convert::Infallible>(forward(request, &shared, &upstream).await) }
    });
    // A client that goes away mid-request is not the test's concern.
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

/// Hop-by-hop headers, which belong to one connection and are not forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

async fn forward(
    request: Request<Incoming>,
    shared: &Shared,
    upstream: &tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
) -> Response<Body> {
    shared.count(request.uri().path());
    let Some(address) = shared.upstream() else {
        return answer(StatusCode::BAD_GATEWAY, "the Dex front has no Dex to forward to yet");
    };
    let (mut parts, body) = request.into_parts();
    // Buffered (Dex's requests are small forms), so that a request sent on a
    // connection Dex had just closed can be sent again on a new one.
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return answer(StatusCode::BAD_REQUEST, &format!("could not read the request body: {error}")),
    };
    for name in HOP_BY_HOP.iter().chain([&header::TRANSFER_ENCODING, &header::CONTENT_LENGTH]) {
        parts.headers.remove(name);
    }
    let mut sender = upstream.lock().await;
    for attempt in 0..2 {
        let reused = sender.as_ref().is_some_and(|sender| !sender.is_closed());
        if !reused {
            match connect(address).await {
                Ok(fresh) => *sender = Some(fresh),
                Err(error) => {
                    *sender = None;
                    return answer(StatusCode::BAD_GATEWAY, &format!("could not connect to Dex at {address}: {error}"));
                }
            }
        }
        let Some(connection) = sender.as_mut() else { unreachable!("a connection was just made") };
        if let Err(error) = connection.ready().await {
            *sender = None;
            if reused && attempt == 0 {
                continue;
            }
            return answer(StatusCode::BAD_GATEWAY, &format!("the connection to Dex failed: {error}"));
        }
        let forwarded = Request::from_parts(parts.clone(), Full::new(body.clone()));
        match connection.send_request(forwarded).await {
            Ok(mut response) => {
                for name in &HOP_BY_HOP {
                    response.headers_mut().remove(name);
                }
                return response.map(Either::Left);
            }
            Err(error) => {
                *sender = None;
                // Dex closed a kept-alive connection before it read this request.
                if reused && attempt == 0 && (error.is_canceled() || error.is_closed() || error.is_incomplete_message())
                {
                    continue;
                }
                return answer(StatusCode::BAD_GATEWAY, &format!("forwarding to Dex failed: {error}"));
            }
        }
    }
    answer(StatusCode::BAD_GATEWAY, "Dex closed the connection twice")
}

async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when either side closes; an error then is only a closed socket.
        let _ = connection.await;
    });
    Ok(sender)
}

fn answer(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!("{message}\n")))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
