//! An upgraded session (`kubectl exec`, `attach`, `port-forward`, over SPDY
//! or WebSocket): once the apiserver has answered `101 Switching Protocols`
//! and the client has switched too, bytes are copied both ways until either
//! side closes. The session's audit record is written when it opens (by the
//! caller, with the `101`) and here when it closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use lanyard_core::proxy::audit::SessionEvent;
use tracing::debug;

use super::service::Ticket;

/// Splice the client's upgraded connection and the apiserver's.
pub async fn splice(client: OnUpgrade, upstream: OnUpgrade, ticket: Ticket) {
    ticket.metrics().upgrade(1);
    let bytes = match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((_to_upstream, to_client)) => to_client,
                Err(e) => {
                    debug!(error = %e, "an upgraded session ended with an error");
                    0
                }
            }
        }
        Err(e) => {
            debug!(error = %e, "an upgrade did not complete");
            0
        }
    };
    ticket.metrics().upgrade(-1);
    ticket.audit(101, bytes, Some(SessionEvent::End));
}
