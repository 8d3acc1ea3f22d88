//! The fault a soak injects in its middle.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::PgPool;

use shared::foundation::db;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    None,
    /// `pg_terminate_backend` on every connection of the service, twice.
    Terminate,
    /// PostgreSQL restarted (the `--restart-command`).
    Restart,
}

/// Injects `fault` into the server behind `admin`, whose connections to
/// `database` are the service's.
pub async fn inject(
    fault: Fault,
    admin: &PgPool,
    database: &str,
    restart_command: Option<String>,
) -> Result<()> {
    match fault {
        Fault::Terminate => {
            for _ in 0..2 {
                let killed: i64 = db::query_scalar(
                    // The victims first (`offset 0` keeps the filter from being
                    // reordered after the call), then the calls.
                    "select count(*) filter (where pg_terminate_backend(pid)) from (
                         select pid from pg_stat_activity
                         where datname = $1 and pid <> pg_backend_pid() offset 0
                     ) as service",
                )
                .bind(database)
                .fetch_one(admin)
                .await?;
                eprintln!("soak: terminated {killed} service connection(s)");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Fault::Restart => {
            let command = restart_command.context("--fault restart needs --restart-command")?;
            admin.close().await;
            let status = tokio::task::spawn_blocking(move || {
                Command::new("bash").args(["-c", &command]).status()
            })
            .await??;
            if !status.success() {
                bail!("the restart command failed: {status}");
            }
            eprintln!("soak: PostgreSQL restarted");
        }
        Fault::None => {}
    }
    Ok(())
}
