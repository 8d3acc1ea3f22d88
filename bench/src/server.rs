//! The local server as a child process, for the load, the round trips and
//! the soak.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::fixtures::service_env;
use crate::http;

/// The local server (`fasttrack serve`), the real handler stack.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(bin_dir: &Path, database_url: &str, pool: usize, log: &Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())?
            .port();
        let log = std::fs::File::create(log)?;
        let binary = bin_dir.join("fasttrack");
        let child = Command::new(&binary)
            .args(["serve", "--port", &port.to_string()])
            .envs(service_env(database_url, pool))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = Self { child, port };
        http::wait_healthy(port, Duration::from_secs(30))?;
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
