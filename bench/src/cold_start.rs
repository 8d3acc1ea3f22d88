//! Cold starts, the way public Rust Lambda benchmarks measure them: the
//! function binary starts as Lambda starts it, against a local Lambda Runtime
//! API, and the clock runs from process start to its first response. Peak
//! memory is the process's high-water mark (VmHWM) after a run of invocations.

use std::convert::Infallible;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

/// A Lambda Runtime API: hands out queued events on `next` and reports each
/// response (or error) as it arrives.
pub struct RuntimeApi {
    pub address: String,
    /// When the function first asked for an event: its init was over.
    first_poll: Arc<std::sync::Mutex<Option<Instant>>>,
    events: mpsc::UnboundedSender<String>,
    answers: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (events, queue) = mpsc::unbounded_channel::<String>();
        let (report, answers) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        let first_poll = Arc::new(std::sync::Mutex::new(None));
        let polled = Arc::clone(&first_poll);
        tokio::spawn(async move {
            let mut served = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                let (queue, report) = (Arc::clone(&queue), report.clone());
                let polled = Arc::clone(&polled);
                served += 1;
                let base = served;
                tokio::spawn(async move {
                    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (queue, report, counter) =
                                (Arc::clone(&queue), report.clone(), Arc::clone(&counter));
                            let polled = Arc::clone(&polled);
                            async move {
                                let path = request.uri().path().to_owned();
                                if path.ends_with("/invocation/next") {
                                    polled
                                        .lock()
                                        .expect("not poisoned")
                                        .get_or_insert_with(Instant::now);
                                    let event = queue.lock().await.recv().await;
                                    let Some(event) = event else {
                                        std::future::pending::<()>().await;
                                        unreachable!()
                                    };
                                    let n =
                                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    let id = format!("c0ffee00-0000-4000-8000-{base:06}{n:06}");
                                    return Ok::<_, Infallible>(
                                    hyper::Response::builder()
                                        .header("lambda-runtime-aws-request-id", id)
                                        .header("lambda-runtime-deadline-ms", "4102444800000")
                                        .header(
                                            "lambda-runtime-invoked-function-arn",
                                            "arn:aws:lambda:us-east-1:123456789012:function:bench",
                                        )
                                        .header(
                                            "lambda-runtime-trace-id",
                                            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
                                        )
                                        .body(Full::new(Bytes::from(event)))
                                        .expect("a valid response"),
                                );
                                }
                                let at = Instant::now();
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let kind = if path.ends_with("/error") {
                                    "error: "
                                } else {
                                    ""
                                };
                                let _ = report.send((
                                    at,
                                    format!("{kind}{}", String::from_utf8_lossy(&body)),
                                ));
                                Ok(hyper::Response::builder()
                                    .status(202)
                                    .body(Full::new(Bytes::new()))
                                    .expect("a valid response"))
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            first_poll,
            events,
            answers,
        })
    }

    pub fn queue(&self, event: &str) {
        let _ = self.events.send(event.to_owned());
    }

    /// The next response, or an error if none came in time.
    pub async fn answer(&mut self, timeout: Duration) -> Result<(Instant, String)> {
        match tokio::time::timeout(timeout, self.answers.recv()).await {
            Ok(Some((at, body))) if !body.starts_with("error: ") => Ok((at, body)),
            Ok(Some((_, body))) => Err(anyhow!("the function reported an {body}")),
            Ok(None) | Err(_) => Err(anyhow!("no response within {timeout:?}")),
        }
    }
}

/// How a function is started: its binary, its event and its environment.
pub struct Function<'a> {
    pub name: &'a str,
    pub binary: &'a Path,
    pub event: String,
    pub env: &'a [(String, String)],
}

fn spawn(function: &Function<'_>, runtime_api: &str) -> Result<Child> {
    Command::new(function.binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .envs(crate::fixtures::as_deployed(function.name, function.env))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", function.binary.display()))
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// One cold start, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    /// Process start to the first response: what the first caller waits for
    /// beyond the platform's own start.
    pub first_response: f64,
    /// Process start to its first request for an event: the end of its init.
    pub init: f64,
    /// The same event again, in the same process, queued to answered: the
    /// invocation's own work once warm.
    pub warm_response: f64,
}

pub async fn cold_start(function: &Function<'_>) -> Result<ColdStart> {
    let mut api = RuntimeApi::start().await?;
    api.queue(&function.event);
    let started = Instant::now();
    let child = spawn(function, &api.address)?;
    let first = api.answer(Duration::from_secs(30)).await;
    let again = Instant::now();
    api.queue(&function.event);
    let second = api.answer(Duration::from_secs(30)).await;
    stop(child);
    let name = function.name;
    let (at, _) = first.with_context(|| name.to_owned())?;
    let (warm_at, _) = second.with_context(|| format!("{name}, again"))?;
    let polled = api.first_poll.lock().expect("not poisoned").unwrap_or(at);
    let ms = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64() * 1000.0;
    Ok(ColdStart {
        first_response: ms(started, at),
        init: ms(started, polled),
        warm_response: ms(again, warm_at),
    })
}

/// Peak resident memory in MiB after `invocations` events, one after another.
pub async fn peak_rss_mib(function: &Function<'_>, invocations: usize) -> Result<f64> {
    let mut api = RuntimeApi::start().await?;
    let child = spawn(function, &api.address)?;
    let mut result = Ok(());
    for _ in 0..invocations.max(1) {
        api.queue(&function.event);
        if let Err(e) = api.answer(Duration::from_secs(120)).await {
            result = Err(e.context(function.name.to_owned()));
            break;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
    stop(child);
    result?;
    let status = status.context("reading the process status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    Ok(kib / 1024.0)
}
