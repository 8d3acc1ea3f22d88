//! Answers sent as they are made: the downloads, which may be larger than an
//! API Gateway answer can be (6 MB). A Lambda function URL in
//! `RESPONSE_STREAM` mode sends them on as the function writes them, and so
//! does the local server.

use std::future::Future;

use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use tokio::sync::mpsc;

use super::Response;
use crate::foundation::error::ApiError;
use crate::foundation::out::Out;

/// A body sent a chunk at a time; an error ends it early, so that the client
/// sees it cut off rather than complete.
pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Streamed = http::Response<Body>;

/// How much a download sends at once.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// How many chunks may wait for the client: what a download holds in memory
/// at most, beside the one it is filling.
pub const CHUNKS_AHEAD: usize = 4;

/// A whole answer, as a streamed one.
pub fn whole(response: Response) -> Streamed {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
        other => Bytes::copy_from_slice(&other),
    };
    http::Response::from_parts(
        parts,
        Full::new(bytes).map_err(|never| match never {}).boxed(),
    )
}

/// The body of `first`, then of the chunks `receiver` gets, in order.
pub fn body(first: Bytes, receiver: mpsc::Receiver<std::io::Result<Bytes>>) -> Body {
    let rest = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((chunk, receiver))
    });
    let chunks = futures_util::stream::once(std::future::ready(Ok(first)))
        .chain(rest)
        .map(|chunk| chunk.map(Frame::data));
    BodyExt::boxed(StreamBody::new(chunks))
}

/// A download made by `produce` in a task of its own, as its answer's body:
/// the answer starts with its first chunk, so that a refusal or a fault
/// before any byte is the caller's error to answer. A fault later cuts the
/// body off (the client sees an incomplete download, never a complete-looking
/// one). `produce` gives its `Chunks` back with its outcome.
pub async fn spawn<F>(produce: impl FnOnce(Chunks) -> F) -> Result<Body, ApiError>
where
    F: Future<Output = (Chunks, Result<(), ApiError>)> + Send + 'static,
{
    let (chunks, mut receiver) = Chunks::channel();
    let made = produce(chunks);
    let task = tokio::spawn(async move {
        let (chunks, outcome) = made.await;
        match outcome {
            Ok(()) => chunks
                .finish()
                .await
                .map_err(|left| ApiError::Internal(format!("sending a download: {left}"))),
            Err(error) => {
                chunks.fail("the download stopped part-way").await;
                Err(error)
            }
        }
    });
    match receiver.recv().await {
        Some(Ok(first)) => Ok(body(first, receiver)),
        // Nothing sent: the task's own outcome says why.
        Some(Err(_)) | None => Err(match task.await {
            Ok(Err(error)) => error,
            Ok(Ok(())) => ApiError::Internal("a download wrote nothing".into()),
            Err(task) => ApiError::Internal(format!("a download's task: {task}")),
        }),
    }
}

/// The writing end of a download: bytes gathered into chunks of
/// [`CHUNK_BYTES`], each sent once there is room ([`CHUNKS_AHEAD`]).
pub struct Chunks {
    filling: Vec<u8>,
    sender: mpsc::Sender<std::io::Result<Bytes>>,
}

impl Chunks {
    /// A download's two ends.
    pub fn channel() -> (Self, mpsc::Receiver<std::io::Result<Bytes>>) {
        let (sender, receiver) = mpsc::channel(CHUNKS_AHEAD);
        let chunks = Self {
            filling: Vec::with_capacity(CHUNK_BYTES),
            sender,
        };
        (chunks, receiver)
    }

    async fn send(&mut self, chunk: std::io::Result<Bytes>) -> std::io::Result<()> {
        self.sender
            .send(chunk)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }

    /// Sends what is left: the download is complete.
    pub async fn finish(mut self) -> std::io::Result<()> {
        if !self.filling.is_empty() {
            let last = Bytes::from(std::mem::take(&mut self.filling));
            self.send(Ok(last)).await?;
        }
        Ok(())
    }

    /// Ends the download as cut off (what was gathered is not sent).
    pub async fn fail(mut self, reason: &str) {
        let error = std::io::Error::other(reason.to_owned());
        let _ = self.send(Err(error)).await;
    }
}

impl Out for Chunks {
    fn put(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        self.filling.extend_from_slice(bytes);
        async move {
            if self.filling.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut self.filling, Vec::with_capacity(CHUNK_BYTES));
                self.send(Ok(Bytes::from(full))).await?;
            }
            Ok(())
        }
    }
}
