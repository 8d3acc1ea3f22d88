//! The local server: plain HTTP on 127.0.0.1, each request handed to the same
//! `App::handle` the Lambda binaries run, as an API Gateway v2 request would be.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shared::app::{App, error_response};
use shared::error::ApiError;
use tokio::net::TcpListener;

pub async fn serve(app: App, addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let app = Arc::new(app);
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut shutdown => return Ok(()),
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(handle(&app, request).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}

async fn handle(app: &App, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Read one byte past the limit, so the app sees an oversized body and answers 413.
    let limit = app.settings.max_body_bytes;
    let body = match Limited::new(body, limit + 1).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let error = ApiError::PayloadTooLarge { limit };
            return into_hyper(error_response(&error, "local"));
        }
    };
    let body = if body.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::Binary(body.to_vec())
    };
    into_hyper(app.handle(http::Request::from_parts(parts, body)).await)
}

fn into_hyper(response: http::Response<lambda_http::Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = Bytes::copy_from_slice(body.as_ref());
    hyper::Response::from_parts(parts, Full::new(bytes))
}
