//! The access proxy: every kubectl request of a member arrives here with a
//! Lanyard cluster token and leaves, if admitted, for the kube-apiserver as
//! that member (`Impersonate-User`), under the proxy's own ServiceAccount.
//!
//! The security boundary's design memo and its pure decisions live in
//! [`lanyard_core::proxy`]; this module is the I/O around them, one layer
//! per file, in the order a request meets them:
//!
//! * [`tls`]: the listener's certificate (files, reloaded when they change,
//!   or a self-signed one kept on disk and published to the control plane);
//!   ALPN `h2` and `http/1.1`.
//! * [`service`]: per request, authentication against the synced access
//!   view ([`sync`]), the impersonation headers, and refusals as Kubernetes
//!   `Status` objects ([`refusal`]).
//! * [`upstream`]: the request, streamed, to the kube-apiserver over
//!   HTTP/1.1 with the proxy's ServiceAccount credential; the response
//!   streamed back frame by frame (watches and logs are never buffered, and
//!   no timeout cuts them).
//! * [`upgrade`]: `exec`, `attach` and `port-forward` (SPDY or WebSocket),
//!   spliced both ways once both sides have switched protocols.
//! * [`audit`]: one JSON record per request on standard output (an upgraded
//!   session gets one when it opens and one when it closes).
//! * [`crate::metrics`]: requests by code, latency, sessions open, the access state's age.
//!
//! It fails closed: until the first sync, and once the last sync is older
//! than the staleness limit, every request is refused.

pub mod audit;
pub mod body;
pub mod refusal;
pub mod service;
pub mod sync;
pub mod tls;
pub mod upgrade;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers (HTTP/1.1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `proxy` on `listener` with `tls` until `shutdown` says so. Open
/// connections (a watch, an exec session) end with the process.
pub async fn serve(
    listener: TcpListener,
    tls: tls::ServerTls,
    proxy: Arc<service::Proxy>,
    mut shutdown: watch::Receiver<bool>,
) {
    info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "access proxy listening");
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let acceptor = tls.acceptor();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => return debug!(peer = %peer, "TLS handshake timed out"),
            };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            let service = hyper::service::service_fn(move |req| proxy.clone().handle(req));
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}
