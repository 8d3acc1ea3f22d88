//! A minimal HTTP/1.1 client over a plain socket, for the harness's own
//! sequential requests (round trips, readiness). Load comes from wrk.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Result, bail};

pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

/// Sends one request on a fresh connection and returns the status and body.
pub fn send(port: u16, request: &Request) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = request.body.as_deref().unwrap_or("");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        request.method,
        request.path,
        body.len()
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:.80}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}

/// Waits until something answers `GET /health` with 200.
pub fn wait_healthy(port: u16, timeout: Duration) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let probe = Request {
            method: "GET",
            path: "/health".into(),
            headers: vec![],
            body: None,
        };
        if let Ok((200, _)) = send(port, &probe) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("the local server on port {port} was not healthy within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
