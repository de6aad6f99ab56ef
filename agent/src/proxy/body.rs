//! The proxy's response body: the apiserver's, passed on frame by frame as
//! it arrives (no buffering, so a watch or a log stream reaches kubectl at
//! once), counted; when it ends (or the client goes away) its audit record
//! is written with the bytes sent and the time taken.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;

/// The error type of every proxied body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the proxy answers with.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Called once with the number of body bytes sent, when the body ends or is dropped.
pub trait OnEnd: Send + 'static {
    /// The body is done.
    fn done(self: Box<Self>, bytes: u64);
}

/// `inner`, counted, calling `on_end` once at its end.
pub fn metered<B>(inner: B, on_end: Box<dyn OnEnd>) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    Metered { inner, bytes: 0, on_end: Some(on_end) }.boxed_unsync()
}

struct Metered<B> {
    inner: B,
    bytes: u64,
    on_end: Option<Box<dyn OnEnd>>,
}

impl<B> Metered<B> {
    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end.done(self.bytes);
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.finish();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        self.finish();
    }
}
