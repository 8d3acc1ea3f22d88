//! `fasttrack-bench`: the benchmark harness. `run` measures the service
//! against its anchors (recompute time, per-route throughput and latency
//! beside pgbench, round trips, cold starts, memory and binary sizes) and
//! prints one table; `generate` and `recompute` are its parts, usable alone;
//! `soak` holds a load, with a fault in it, and checks the database after.
//!
//! Its parts, each using only those listed before it:
//! - `backend` (what it takes from `shared`), `rng`, `http`, `report`;
//! - `database`, `fixtures`: connections, and the secrets, settings and signed
//!   requests the service is started and called with;
//! - `generate`, `server`, `cold_start`, `load`: the data, the local server,
//!   Lambda cold starts, per-route load under wrk and pgbench;
//! - `run`, `soak`: the two whole measurements.

mod cold_start;
mod database;
mod fixtures;
mod generate;
mod http;
mod load;
mod report;
mod rng;
mod run;
mod server;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use clap::{Parser, Subcommand};

use database::{connect, migrate};
use shared::Registry;
use shared::foundation::db;
use shared::unlocks::recompute;

#[derive(Parser)]
#[command(name = "fasttrack-bench", about = "Fast Track benchmark harness")]
struct Cli {
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        default_value = ""
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fill the database with N users across organizations, each partway through
    /// the curriculum. Deterministic for a seed.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 50)]
        organizations: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
    },
    /// Time the scheduled recompute over what is in the database: `runs` passes,
    /// reporting each and the median.
    Recompute {
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = recompute::DEFAULT_BATCH_SIZE)]
        batch_size: i64,
        /// Full sweeps of every user, rather than scheduled runs (which cover
        /// the users changed since the last run).
        #[arg(long)]
        full: bool,
    },
    /// Sustained load on the local server (reads, saves, submits, syncs),
    /// optionally with a fault in the middle, then the database checked
    /// against every acknowledged write. Exits non-zero on any failed check.
    Soak {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 200)]
        users: usize,
        #[arg(long, default_value_t = 16)]
        workers: usize,
        #[arg(long, value_enum, default_value = "none")]
        fault: soak::Fault,
        /// How to restart PostgreSQL for `--fault restart`.
        #[arg(long)]
        restart_command: Option<String>,
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
    },
    /// Every measurement, each beside its anchor, as one table: data generation,
    /// recompute at two sizes, per-route load against pgbench, round trips,
    /// cold starts, peak memory and binary sizes. Makes (or, with --reuse,
    /// reuses) its own databases on DATABASE_URL's server.
    Run(run::Options),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `context: cause: ...`. A cause is left
/// out when the text before it already ends with it (sqlx's errors, for one,
/// print their source in their own message).
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !previous.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        previous = cause;
    }
    text
}

async fn run(cli: Cli) -> Result<()> {
    if cli.database_url.is_empty() {
        bail!("DATABASE_URL is not set");
    }
    let database_url = cli.database_url;
    match cli.command {
        Command::Generate {
            users,
            organizations,
            seed,
            batch,
        } => {
            let spec = generate::Spec {
                users,
                organizations: organizations.max(1),
                seed,
                batch: batch.max(1),
            };
            generate_users(&database_url, &spec).await
        }
        Command::Recompute {
            runs,
            batch_size,
            full,
        } => time_recompute(&database_url, runs, batch_size, full).await,
        Command::Soak {
            seconds,
            users,
            workers,
            fault,
            restart_command,
            bin_dir,
        } => {
            let pass = soak::soak(soak::Options {
                database_url,
                users,
                seconds,
                workers,
                fault,
                restart_command,
                bin_dir,
                judge_memory: seconds >= 60,
            })
            .await?;
            ensure!(pass, "the soak found failures (above)");
            Ok(())
        }
        Command::Run(options) => {
            let rows = run::run(&database_url, options).await?;
            print!("{}", report::table(&rows));
            let (passed, missed) = report::summary(&rows);
            println!("{passed} budgets met, {missed} missed");
            Ok(())
        }
    }
}

async fn generate_users(database_url: &str, spec: &generate::Spec) -> Result<()> {
    let pool = connect(database_url, 2).await?;
    migrate(&pool).await?;
    let started = Instant::now();
    let counts = generate::generate(&pool, Registry::embedded(), spec).await?;
    println!(
        "generated {} users, {} progress rows, {} submissions, {} field outputs in {:.1} s (seed {})",
        counts.users,
        counts.progress_rows,
        counts.submissions,
        counts.field_outputs,
        started.elapsed().as_secs_f64(),
        spec.seed
    );
    Ok(())
}

async fn time_recompute(
    database_url: &str,
    runs: usize,
    batch_size: i64,
    full: bool,
) -> Result<()> {
    let pool = connect(database_url, 2).await?;
    let pool = db::Pool::on_same_database(&pool, 2);
    let scope = if full {
        recompute::Scope::All
    } else {
        recompute::Scope::Changed
    };
    let mut seconds = Vec::new();
    for run in 1..=runs.max(1) {
        let started = Instant::now();
        let report = recompute::run_with(
            &pool,
            Registry::embedded(),
            batch_size,
            recompute::Housekeeping::default(),
            scope,
        )
        .await?;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "recompute run {run}: {elapsed:.2} s over {} users ({} rows created, {} unlocks)",
            report.users,
            report.rows_created,
            report.unlocked.values().sum::<u64>()
        );
        seconds.push(elapsed);
    }
    seconds.sort_by(f64::total_cmp);
    println!("recompute median: {:.2} s", seconds[seconds.len() / 2]);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_is_described_with_its_context_and_without_repeated_causes() {
        let refused = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let error = anyhow::Error::new(refused).context("connecting to the database");
        assert_eq!(
            super::describe(&error),
            "connecting to the database: error communicating with database: connection refused"
        );
    }
}
