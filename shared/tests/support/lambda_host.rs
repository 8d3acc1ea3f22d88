//! A Lambda host for the function binaries' tests: a small Runtime API
//! emulator that hands out one event and reports what came back, and the
//! binary started with only what Lambda would set.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::convert::Infallible;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What a function posted back: the path (`.../response` or `.../error`), its
/// headers and its body.
pub struct Posted {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Posted {
    /// The body as JSON (a buffered answer, or an error report).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A Lambda Runtime API that hands out one event and reports what came back.
pub struct RuntimeApi {
    pub address: String,
    pub results: mpsc::Receiver<Posted>,
}

impl RuntimeApi {
    pub async fn start(event: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (sender, results) = mpsc::channel(4);
        let event = Arc::new(Mutex::new(Some(event)));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (event, sender) = (Arc::clone(&event), sender.clone());
                tokio::spawn(async move {
                    let service = service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let (event, sender) = (Arc::clone(&event), sender.clone());
                            async move {
                                let path = request.uri().path().to_owned();
                                if path.ends_with("/invocation/next") {
                                    let next = event.lock().unwrap().take();
                                    let Some(body) = next else {
                                        // One invocation per test: later polls wait forever.
                                        std::future::pending::<()>().await;
                                        unreachable!()
                                    };
                                    let response = hyper::Response::builder()
                                    .header("lambda-runtime-aws-request-id", "c0ffee00-0000-4000-8000-000000000001")
                                    .header("lambda-runtime-deadline-ms", "4102444800000")
                                    .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:get-progress")
                                    .header("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap();
                                    return Ok::<_, Infallible>(response);
                                }
                                let headers = request.headers().clone();
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let _ = sender
                                    .send(Posted {
                                        path,
                                        headers,
                                        body,
                                    })
                                    .await;
                                Ok(hyper::Response::builder()
                                    .status(202)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap())
                            }
                        },
                    );
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, results }
    }
}

/// The function binary `binary` (named `name`) with a clean environment:
/// only what Lambda would set.
pub fn function(binary: &str, name: &str, runtime_api: &str, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Reads the child's output as it comes, so that a verbose one never fills
/// its pipe and blocks; `logs()` stops it and gives everything it wrote.
pub struct Running {
    child: Child,
    readers: Vec<std::thread::JoinHandle<String>>,
}

impl Running {
    pub fn start(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let stdout = child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>);
        let readers = [stdout, stderr]
            .into_iter()
            .flatten()
            .map(|mut pipe| {
                std::thread::spawn(move || {
                    let mut text = Vec::new();
                    let _ = pipe.read_to_end(&mut text);
                    String::from_utf8_lossy(&text).into_owned()
                })
            })
            .collect();
        Self { child, readers }
    }

    pub fn logs(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.readers
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .collect()
    }
}
