//! The local server: plain HTTP on 127.0.0.1, each request handed to the same
//! app the Lambda binaries run, as an API Gateway v2 request would be; the
//! downloads' answers are streamed, as their function URL streams them.
//! Like API Gateway it answers CORS preflights itself; it also serves the
//! OpenAPI document at /openapi.json.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use shared::app::App;
use shared::foundation::error::ApiError;
use shared::http::cors::Cors;
use shared::http::{response, stream};

/// What the local server adds around the app.
pub struct Local {
    pub app: App,
    pub cors: Cors,
    pub openapi: Bytes,
}

/// Serves on a listener the caller bound first (so nothing is announced for a
/// port that turns out to be taken), until Ctrl-C.
pub async fn serve(local: Local, listener: TcpListener) -> std::io::Result<()> {
    let app = Arc::new(local);
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

async fn handle(local: &Local, request: hyper::Request<Incoming>) -> stream::Streamed {
    if let Some(preflight) = local.cors.preflight(request.method(), request.headers()) {
        return stream::whole(preflight);
    }
    let headers = request.headers().clone();
    let mut response = if request.method() == http::Method::GET
        && request.uri().path() == "/openapi.json"
    {
        let mut response = http::Response::new(lambda_http::Body::Binary(local.openapi.to_vec()));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        stream::whole(response)
    } else {
        forward(&local.app, request).await
    };
    local.cors.decorate(&headers, &mut response);
    response
}

async fn forward(app: &App, request: hyper::Request<Incoming>) -> stream::Streamed {
    let (parts, mut body) = request.into_parts();
    // Up to one byte past the limit: the app answers an oversized body with its
    // 413 after routing and authentication, as on Lambda, with its request id.
    let limit = app.context.settings.max_body_bytes;
    let mut read = Vec::new();
    while read.len() <= limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(frame) = frame else {
            let unreadable =
                ApiError::bad_request("unreadable_body", "the request body could not be read");
            return stream::whole(response::error(&unreadable, "local"));
        };
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
        }
    }
    read.truncate(limit + 1);
    let body = if read.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::Binary(read)
    };
    app.handle_streaming(http::Request::from_parts(parts, body))
        .await
}
