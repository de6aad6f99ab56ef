//! A request body that is read to its end even when the component stops
//! reading it early: a `413` for a body over the endpoint's limit, or an
//! answer that ignores the body.
//!
//! Without this, the connection closes with unread data in the socket, the
//! kernel answers the client with a reset, and the client can lose the
//! response it was already sent (seen as a `413` with an empty body). So
//! when the component drops the body before its end, the rest is read and
//! thrown away in the background, up to [`DRAIN_LIMIT`] bytes and for at
//! most [`DRAIN_TIME`]; past either, the connection closes as before.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;

/// The most of an unread request body that is drained.
pub const DRAIN_LIMIT: usize = 2 * 1024 * 1024;
/// The longest a drain may take.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// `B`, drained at its drop.
pub struct Draining<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    inner: Option<B>,
}

impl<B> Draining<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// Wrap `inner`.
    pub fn new(inner: B) -> Self {
        Draining { inner: Some(inner) }
    }
}

impl<B> Body for Draining<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl<B> Drop for Draining<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else { return };
        if inner.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let drain = async {
                let mut read = 0usize;
                while let Some(Ok(frame)) = inner.frame().await {
                    read += frame.data_ref().map_or(0, Bytes::len);
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
}
